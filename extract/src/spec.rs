//! The extract spec (CONTRACTS.md, Extracts): what a project may receive, checked before
//! anything is read. Direct identifiers and free text are not in any table's selectable
//! columns; key columns are selectable but always leave re-keyed to the project.

use std::collections::BTreeMap;
use std::sync::LazyLock;

use serde::Deserialize;
use vaxlake_catalog::{Column, Generalise, Role};

use crate::ExtractError;

/// A column of an extractable table, and what it may be generalised to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColumnKind {
    /// A pseudonym: re-keyed to the project, never generalised.
    Key(vaxlake_pseudonymize::IdKind),
    /// A date: `day`, `month`, `quarter`, `year`.
    Date,
    /// A commune: `commune`, `canton`, `country`.
    Commune,
    /// A canton: `canton`, `country`.
    Canton,
    /// Any other value, kept as it is (or suppressed with `*`).
    Plain,
}

impl ColumnKind {
    /// What an extract may do with a catalogue column; `None` for one never offered.
    fn of(column: &Column) -> Option<ColumnKind> {
        if !column.extractable {
            return None;
        }
        Some(match column.role {
            Role::Identity(kind) => ColumnKind::Key(kind),
            Role::QuasiIdentifier(Generalise::BirthMonth) | Role::Date => ColumnKind::Date,
            Role::QuasiIdentifier(Generalise::Commune) => ColumnKind::Commune,
            Role::QuasiIdentifier(Generalise::Canton) => ColumnKind::Canton,
            Role::QuasiIdentifier(Generalise::Suppress) | Role::Measure => ColumnKind::Plain,
            Role::DerivedFromIdentity | Role::FreeText | Role::Operational => return None,
        })
    }
}

/// A table's columns offered to extracts, with their kinds.
type Offered = Vec<(&'static str, ColumnKind)>;

/// The tables and views offered to extracts, with their columns in the catalogue's order.
static OFFERED: LazyLock<Vec<(&'static str, Offered)>> = LazyLock::new(|| {
    let offered = |columns: &'static [Column]| {
        columns
            .iter()
            .filter_map(|c| ColumnKind::of(c).map(|kind| (c.name, kind)))
            .collect()
    };
    let tables = vaxlake_catalog::TABLES
        .iter()
        .filter(|t| t.extracts)
        .map(|t| (t.name, offered(t.columns)));
    let views = vaxlake_catalog::VIEWS
        .iter()
        .filter(|v| v.extracts)
        .map(|v| (v.name, offered(v.columns)));
    tables.chain(views).collect()
});

/// The columns a table offers to extracts (the catalogue's extractable columns). Everything
/// else (lot numbers, vaccine names as typed, technical timestamps) is free text or
/// operational detail and is never offered.
pub fn selectable(table: &str) -> Option<&'static [(&'static str, ColumnKind)]> {
    OFFERED
        .iter()
        .find(|(name, _)| *name == table)
        .map(|(_, columns)| columns.as_slice())
}

/// The catalogue's columns called `name`, in every table and view.
fn catalogue_columns(name: &str) -> impl Iterator<Item = &'static Column> + '_ {
    let tables = vaxlake_catalog::TABLES.iter().flat_map(|t| t.columns);
    let views = vaxlake_catalog::VIEWS.iter().flat_map(|v| v.columns);
    tables.chain(views).filter(move |c| c.name == name)
}

/// The levels a column kind can be generalised to, finest first.
pub fn levels(kind: ColumnKind) -> &'static [&'static str] {
    match kind {
        ColumnKind::Date => &["day", "month", "quarter", "year", "*"],
        ColumnKind::Commune => &["commune", "canton", "country", "*"],
        ColumnKind::Canton => &["canton", "country", "*"],
        ColumnKind::Plain => &["value", "*"],
        ColumnKind::Key(_) => &[],
    }
}

/// Whether a column can, with others, single a person out (birth month, sex, place, any
/// date): such a column may only leave as a declared quasi-identifier, so that k-anonymity
/// covers it.
pub fn quasi_identifying(name: &str, kind: ColumnKind) -> bool {
    matches!(
        kind,
        ColumnKind::Date | ColumnKind::Commune | ColumnKind::Canton
    ) || catalogue_columns(name).any(Column::quasi_identifying)
}

/// The level a column is stored at (see [`levels`]): releasing it at this level coarsens
/// nothing. `birth_month` holds the first of the month; other dates hold the day.
pub fn stored_precision(name: &str, kind: ColumnKind) -> &'static str {
    match kind {
        ColumnKind::Date
            if catalogue_columns(name)
                .any(|c| c.role == Role::QuasiIdentifier(Generalise::BirthMonth)) =>
        {
            "month"
        }
        ColumnKind::Date => "day",
        ColumnKind::Commune => "commune",
        ColumnKind::Canton => "canton",
        ColumnKind::Plain | ColumnKind::Key(_) => "value",
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct SpecFile {
    project: String,
    purpose: String,
    table: String,
    columns: Vec<String>,
    #[serde(rename = "where")]
    filter: Option<String>,
    #[serde(default)]
    quasi_identifiers: Vec<String>,
    k: u32,
    max_suppressed_share: f64,
    #[serde(default)]
    generalise: BTreeMap<String, Vec<String>>,
}

/// A checked spec.
#[derive(Debug, Clone)]
pub struct Spec {
    pub project: String,
    pub purpose: String,
    pub table: String,
    /// Selected columns, in the spec's order, with their kinds.
    pub columns: Vec<(String, ColumnKind)>,
    /// Read-only SQL predicate over the table's columns.
    pub filter: Option<String>,
    pub quasi_identifiers: Vec<String>,
    pub k: u32,
    pub max_suppressed_share: f64,
    /// Per quasi-identifier, the ladder of levels tried in order (absent: kept as is).
    pub ladders: BTreeMap<String, Vec<String>>,
    /// BLAKE3 of the spec file's bytes: the manifest names the exact spec.
    pub hash: String,
    /// The spec file's text, copied into the manifest.
    pub text: String,
}

/// Whether `text` holds 9 or more digits in a row: the shape of a national number, which the
/// audit and error texts redact for the same reason.
fn has_long_digit_run(text: &str) -> bool {
    text.split(|c: char| !c.is_ascii_digit())
        .any(|run| run.len() >= 9)
}

impl Spec {
    /// Parses and checks a spec; every error names the offending field.
    pub fn parse(text: &str) -> Result<Spec, ExtractError> {
        let bad = |reason: String| ExtractError::Spec(reason);
        let file: SpecFile = toml::from_str(text).map_err(|e| bad(toml_reason(&e, text)))?;
        let project_ok = !file.project.is_empty()
            && file.project.len() <= 64
            && file
                .project
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
            && !file.project.starts_with('.')
            && !has_long_digit_run(&file.project);
        if !project_ok {
            // The value is not quoted: a project name is the one free field a planted
            // identity could hide in (and it is written into every manifest and path).
            return Err(bad(
                "project: letters, digits, '-', '_' and '.' only (at most 64, no run of 9 or more \
                 digits: a national number), not starting with '.'"
                    .into(),
            ));
        }
        if file.purpose.trim().is_empty() {
            return Err(bad("purpose must say what the extract is for".into()));
        }
        let offered = selectable(&file.table).ok_or_else(|| {
            bad(format!(
                "table {}: one of vaccinations, antigen_doses, cases",
                shown(&file.table)
            ))
        })?;
        if file.columns.is_empty() {
            return Err(bad("columns is empty".into()));
        }
        let mut columns = Vec::new();
        for (at, name) in file.columns.iter().enumerate() {
            let kind = offered
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, kind)| *kind)
                .ok_or_else(|| {
                    let name = match shown(name) {
                        known if known.starts_with('"') => known,
                        _ => format!("columns[{at}]"),
                    };
                    bad(format!(
                        "column {name} cannot be extracted from {} (direct identifiers and free text never leave; offered: {})",
                        file.table,
                        offered.iter().map(|(n, _)| *n).collect::<Vec<_>>().join(", ")
                    ))
                })?;
            if columns.iter().any(|(n, _)| n == name) {
                return Err(bad(format!("column {name:?} is listed twice")));
            }
            columns.push((name.clone(), kind));
        }
        for (at, qi) in file.quasi_identifiers.iter().enumerate() {
            match columns.iter().find(|(n, _)| n == qi) {
                None => {
                    return Err(bad(format!(
                        "quasi_identifiers[{at}] ({}) is not among the columns",
                        shown(qi)
                    )))
                }
                Some((_, ColumnKind::Key(_))) => {
                    return Err(bad(format!(
                        "{qi:?} is a pseudonym, unique per person: it cannot be a quasi-identifier of a k-anonymous extract"
                    )))
                }
                Some(_) => {}
            }
        }
        // Every quasi-identifying column must be declared, or it would leave exact, outside
        // the k-anonymity check.
        for (name, kind) in &columns {
            if quasi_identifying(name, *kind) && !file.quasi_identifiers.contains(name) {
                return Err(bad(format!(
                    "column {name:?} is a quasi-identifier (with the other columns it can single a person out) but is not in quasi_identifiers: add {name:?} to quasi_identifiers (with a generalise.{name} ladder if k needs it), or drop it from columns"
                )));
            }
        }
        if file.k < 2 {
            return Err(bad(format!(
                "k = {}: k must be at least 2 (every released record shares its quasi-identifiers with k - 1 others)",
                file.k
            )));
        }
        if !(0.0..1.0).contains(&file.max_suppressed_share) {
            return Err(bad("max_suppressed_share must be in [0, 1)".into()));
        }
        for (column, ladder) in &file.generalise {
            if !file.quasi_identifiers.contains(column) {
                return Err(bad(format!(
                    "generalise: key {} is not a quasi-identifier",
                    shown(column)
                )));
            }
            let kind = columns
                .iter()
                .find(|(n, _)| n == column)
                .map(|(_, k)| *k)
                .unwrap_or(ColumnKind::Plain);
            let allowed = levels(kind);
            if ladder.is_empty() {
                return Err(bad(format!("generalise.{column}: empty ladder")));
            }
            for (at, level) in ladder.iter().enumerate() {
                if !allowed.contains(&level.as_str()) {
                    return Err(bad(format!(
                        "generalise.{column}[{at}]: unknown level (levels: {})",
                        allowed.join(", ")
                    )));
                }
            }
            let ranks: Vec<usize> = ladder
                .iter()
                .map(|l| allowed.iter().position(|a| a == l).unwrap_or(0))
                .collect();
            if ranks.windows(2).any(|w| w[0] >= w[1]) {
                return Err(bad(format!(
                    "generalise.{column}: levels must go from finer to coarser"
                )));
            }
        }
        if let Some(filter) = &file.filter {
            check_filter(filter)?;
        }
        Ok(Spec {
            project: file.project,
            purpose: file.purpose,
            table: file.table,
            columns,
            filter: file.filter,
            quasi_identifiers: file.quasi_identifiers,
            k: file.k,
            max_suppressed_share: file.max_suppressed_share,
            ladders: file.generalise,
            hash: blake3::hash(text.as_bytes()).to_hex().to_string(),
            text: text.to_string(),
        })
    }

    /// The ladder of a quasi-identifier: the spec's, or its finest level alone.
    pub fn ladder(&self, column: &str) -> Vec<String> {
        if let Some(ladder) = self.ladders.get(column) {
            return ladder.clone();
        }
        let kind = self
            .columns
            .iter()
            .find(|(n, _)| n == column)
            .map(|(_, k)| *k)
            .unwrap_or(ColumnKind::Plain);
        vec![levels(kind).first().copied().unwrap_or("value").to_string()]
    }
}

/// A value of the spec as an error may show it: quoted if it is a column, table or level
/// name the catalogue knows (fixed words, never a person's), otherwise only said to be
/// something else, since any free text of the spec could hold a planted identity.
fn shown(value: &str) -> String {
    let known = selectable(value).is_some()
        || catalogue_columns(value).next().is_some()
        || [
            ColumnKind::Date,
            ColumnKind::Commune,
            ColumnKind::Canton,
            ColumnKind::Plain,
        ]
        .iter()
        .any(|kind| levels(*kind).contains(&value));
    if known {
        format!("{value:?}")
    } else {
        "(a name the catalogue does not know)".into()
    }
}

/// The SQL parser's complaint about a `where` predicate without the token it quotes
/// (`found: ...` may be a literal of the predicate, a national number as easily as a
/// lot number): only where it stopped.
fn sql_reason(error: &datafusion::sql::sqlparser::parser::ParserError) -> String {
    let text = error.to_string();
    let at = text
        .rfind(" at Line: ")
        .map(|at| &text[at + 1..])
        .filter(|tail| {
            tail.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, ' ' | ':' | ','))
        });
    match at {
        Some(at) => format!("not a valid SQL expression ({at})"),
        None => "not a valid SQL expression".into(),
    }
}

/// What is wrong with a TOML file, said without quoting it: the line and column, and the
/// kind of error. The TOML library's own text quotes the offending line, and serde's
/// messages quote the offending value or key (`unknown variant \`...\``, `invalid type:
/// string "..."`, `unexpected keys in table: ...`); a configuration file may hold a
/// secret or an identity where a value was expected (a raw token pasted in place of its
/// hash, a national number in a project name), and the error reaches stderr, logs and
/// answers. Only the fixed part of the message is kept: what comes before the first quoted
/// or listed value, and what the file was expected to hold (always written by the reader,
/// never taken from the input).
pub fn toml_reason(error: &toml::de::Error, text: &str) -> String {
    let reason = fixed_part(error.message());
    match error.span() {
        Some(span) => {
            let (line, column) = position(text, span.start);
            format!("line {line}, column {column}: {reason}")
        }
        None => reason,
    }
}

/// The fixed part of a deserializer's message (serde's, the TOML parser's): the kind of
/// error before the first quoted or listed value, and what was expected, which follows the
/// value and is written by the reader. Whatever the input held is left out.
pub fn fixed_part(message: &str) -> String {
    // serde names a missing or repeated field by the reader's own (static) field name.
    for kind in ["missing field `", "duplicate field `"] {
        if let Some(rest) = message.strip_prefix(kind) {
            if let Some((field, "")) = rest.split_once('`') {
                if !field.is_empty()
                    && field
                        .chars()
                        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
                {
                    return message.to_string();
                }
            }
        }
    }
    let head_end = message
        .find([':', ',', '`', '"', '\'', '\n'])
        .unwrap_or(message.len());
    let mut reason = message[..head_end].trim().to_string();
    if reason.is_empty() {
        reason = "invalid TOML".into();
    }
    // What the reader expected follows the quoted value, so it is never input.
    let expected = if message.starts_with("unexpected keys in table") {
        message
            .rfind(", available keys: ")
            .map(|at| format!("expected one of {}", &message[at + 18..]))
    } else {
        message
            .rfind(", expected ")
            .map(|at| message[at + 2..].to_string())
    };
    if let Some(expected) = expected {
        reason.push_str(", ");
        reason.push_str(&expected);
    }
    reason
}

/// The 1-based line and column (in characters) of byte `offset` of `text`.
fn position(text: &str, offset: usize) -> (usize, usize) {
    let mut offset = offset.min(text.len());
    while !text.is_char_boundary(offset) {
        offset -= 1;
    }
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |at| at + 1);
    (line, before[line_start..].chars().count() + 1)
}

/// The `where` predicate must be one boolean expression over the table's columns: no
/// subquery (which could read another table into the extract), no statement separator.
pub fn check_filter(filter: &str) -> Result<(), ExtractError> {
    use datafusion::sql::sqlparser::ast::{Expr, Visit, Visitor};
    use datafusion::sql::sqlparser::dialect::GenericDialect;
    use datafusion::sql::sqlparser::parser::Parser;
    use datafusion::sql::sqlparser::tokenizer::Token;
    use std::ops::ControlFlow;

    let bad = |reason: &str| ExtractError::Spec(format!("where: {reason}"));
    if filter.contains("--") || filter.contains("/*") || filter.contains(';') {
        return Err(bad(
            "comments and ';' are not allowed (one expression only)",
        ));
    }
    let dialect = GenericDialect {};
    let mut parser = Parser::new(&dialect)
        .try_with_sql(filter)
        .map_err(|e| bad(&sql_reason(&e)))?;
    let expr = parser.parse_expr().map_err(|e| bad(&sql_reason(&e)))?;
    if parser.peek_token().token != Token::EOF {
        return Err(bad("one expression only (nothing may follow it)"));
    }
    struct Subqueries(bool);
    impl Visitor for Subqueries {
        type Break = ();
        fn pre_visit_expr(&mut self, expr: &Expr) -> ControlFlow<()> {
            if matches!(
                expr,
                Expr::Subquery(_) | Expr::Exists { .. } | Expr::InSubquery { .. }
            ) {
                self.0 = true;
                return ControlFlow::Break(());
            }
            ControlFlow::Continue(())
        }
    }
    let mut found = Subqueries(false);
    let _ = expr.visit(&mut found);
    if found.0 {
        return Err(bad(
            "subqueries are not allowed (the predicate reads only the extract's table)",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const SPEC: &str = r#"
project = "P-2026-014"
purpose = "MMR timeliness by commune"
table = "antigen_doses"
columns = ["person_key", "antigen", "dose_seq", "age_months_at_dose", "birth_month", "sex", "commune"]
where = "antigen = 'measles'"
quasi_identifiers = ["birth_month", "sex", "commune"]
k = 5
max_suppressed_share = 0.05
[generalise]
birth_month = ["month", "quarter", "year"]
commune = ["commune", "canton", "country"]
"#;

    #[test]
    fn the_contract_example_parses() {
        let spec = Spec::parse(SPEC).unwrap();
        assert_eq!(spec.project, "P-2026-014");
        assert_eq!(spec.columns.len(), 7);
        assert_eq!(spec.ladder("sex"), vec!["value"]);
        assert_eq!(spec.ladder("commune"), vec!["commune", "canton", "country"]);
        assert_eq!(
            spec.hash,
            blake3::hash(SPEC.as_bytes()).to_hex().to_string()
        );
    }

    #[test]
    fn what_must_not_leave_is_refused_with_the_reason() {
        for (from, to, wanted) in [
            (
                "\"commune\"]\nwhere",
                "\"commune\", \"lot_number\"]\nwhere",
                "cannot be extracted",
            ),
            ("table = \"antigen_doses\"", "table = \"audit\"", "one of"),
            (
                "antigen = 'measles'",
                "antigen IN (SELECT antigen FROM vaccinations)",
                "subqueries",
            ),
            ("antigen = 'measles'", "1=1; DROP TABLE x", "one expression"),
            ("k = 5", "k = 1", "at least 2"),
            (
                "\"sex\", \"commune\"]\nk",
                "\"sex\", \"person_key\"]\nk",
                "pseudonym",
            ),
            (
                "[\"month\", \"quarter\", \"year\"]",
                "[\"year\", \"month\"]",
                "finer to coarser",
            ),
            (
                "project = \"P-2026-014\"",
                "project = \"../etc\"",
                "project",
            ),
            (
                "project = \"P-2026-014\"",
                "project = \"P-1990010112345\"",
                "national number",
            ),
        ] {
            let text = SPEC.replacen(from, to, 1);
            assert_ne!(text, SPEC, "{from}");
            let error = Spec::parse(&text).unwrap_err().to_string();
            assert!(error.contains(wanted), "{error} (wanted {wanted})");
        }
    }

    #[test]
    fn quasi_identifying_columns_must_be_declared() {
        // Each selected but undeclared quasi-identifier is refused, naming it and the fix.
        for (from, to, column) in [
            (
                "quasi_identifiers = [\"birth_month\", \"sex\", \"commune\"]",
                "quasi_identifiers = [\"birth_month\", \"commune\"]",
                "sex",
            ),
            (
                "quasi_identifiers = [\"birth_month\", \"sex\", \"commune\"]",
                "quasi_identifiers = []",
                "birth_month",
            ),
            (
                "\"commune\"]\nwhere",
                "\"commune\", \"administered_on\"]\nwhere",
                "administered_on",
            ),
            (
                "\"commune\"]\nwhere",
                "\"commune\", \"canton\"]\nwhere",
                "canton",
            ),
        ] {
            let text = SPEC.replacen(from, to, 1);
            assert_ne!(text, SPEC, "{from}");
            let error = Spec::parse(&text).unwrap_err().to_string();
            assert!(
                error.contains(&format!("column {column:?} is a quasi-identifier"))
                    && error.contains(&format!("add {column:?} to quasi_identifiers")),
                "{error}"
            );
        }
        // Every table's dates, places, birth month and sex count; the others do not.
        for table in ["vaccinations", "antigen_doses", "cases"] {
            for (name, kind) in selectable(table).unwrap() {
                let expected = matches!(
                    *name,
                    "birth_month" | "sex" | "commune" | "canton" | "administered_on" | "onset_date"
                );
                assert_eq!(quasi_identifying(name, *kind), expected, "{table}.{name}");
            }
        }
        // Declared, they pass.
        let text = SPEC
            .replacen(
                "\"commune\"]\nwhere",
                "\"commune\", \"administered_on\"]\nwhere",
                1,
            )
            .replacen(
                "quasi_identifiers = [\"birth_month\", \"sex\", \"commune\"]",
                "quasi_identifiers = [\"birth_month\", \"sex\", \"commune\", \"administered_on\"]",
                1,
            );
        Spec::parse(&text).unwrap();
    }

    #[test]
    fn k_must_be_at_least_2_even_without_quasi_identifiers() {
        let text = r#"
project = "P-1"
purpose = "doses per vaccine"
table = "vaccinations"
columns = ["person_key", "vaccine_atc"]
k = 1
max_suppressed_share = 0.0
"#;
        let error = Spec::parse(text).unwrap_err().to_string();
        assert!(error.contains("at least 2"), "{error}");
        Spec::parse(&text.replace("k = 1", "k = 2")).unwrap();
    }

    /// The catalogue offers exactly the columns CONTRACTS.md lists, with these kinds.
    #[test]
    fn the_offered_columns() {
        use vaxlake_pseudonymize::IdKind;
        use ColumnKind::*;
        let expected: [(&str, &[(&str, ColumnKind)]); 3] = [
            (
                "vaccinations",
                &[
                    ("event_key", Key(IdKind::Event)),
                    ("person_key", Key(IdKind::Person)),
                    ("birth_month", Date),
                    ("sex", Plain),
                    ("commune", Commune),
                    ("canton", Canton),
                    ("administered_on", Date),
                    ("age_months_at_dose", Plain),
                    ("vaccine_atc", Plain),
                    ("dose_number_recorded", Plain),
                    ("status", Plain),
                    ("vaccinator_key", Key(IdKind::Practitioner)),
                ],
            ),
            (
                "antigen_doses",
                &[
                    ("person_key", Key(IdKind::Person)),
                    ("antigen", Plain),
                    ("dose_seq", Plain),
                    ("administered_on", Date),
                    ("age_months_at_dose", Plain),
                    ("birth_month", Date),
                    ("sex", Plain),
                    ("commune", Commune),
                    ("canton", Canton),
                    ("valid", Plain),
                    ("invalid_reason", Plain),
                ],
            ),
            (
                "cases",
                &[
                    ("case_key", Key(IdKind::Case)),
                    ("person_key", Key(IdKind::Person)),
                    ("disease", Plain),
                    ("onset_date", Date),
                    ("hospitalised", Plain),
                    ("died", Plain),
                    ("birth_month", Date),
                    ("sex", Plain),
                    ("commune", Commune),
                    ("canton", Canton),
                ],
            ),
        ];
        for (table, columns) in expected {
            assert_eq!(selectable(table).unwrap(), columns, "{table}");
        }
        for table in ["population", "quarantine", "optout", "persons", "audit"] {
            assert!(selectable(table).is_none(), "{table}");
        }
    }

    #[test]
    fn stored_precisions() {
        use vaxlake_pseudonymize::IdKind;
        assert_eq!(stored_precision("birth_month", ColumnKind::Date), "month");
        assert_eq!(stored_precision("administered_on", ColumnKind::Date), "day");
        assert_eq!(stored_precision("commune", ColumnKind::Commune), "commune");
        assert_eq!(stored_precision("canton", ColumnKind::Canton), "canton");
        assert_eq!(stored_precision("sex", ColumnKind::Plain), "value");
        assert_eq!(
            stored_precision("person_key", ColumnKind::Key(IdKind::Person)),
            "value"
        );
    }
}

#[cfg(test)]
#[path = "spec_generated.rs"]
mod generated;
