//! Generated input for the extract spec (issue 19): valid specs with one field replaced by
//! a hostile value, truncated, with a byte order mark or CRLF, huge or deeply nested TOML,
//! and arbitrary bytes. [`Spec::parse`] must never panic, and no error may quote an
//! identity planted in the input: a national number (13 digits) or a name with the marker
//! `Qzx`, wherever it was put (a value, a key, a table name, a `where` literal).

use super::*;
use proptest::prelude::*;

/// Cases per property: every field meets every hostile value several times within the CI
/// budget of a debug build.
const CASES: u32 = 256;

fn config() -> ProptestConfig {
    ProptestConfig {
        cases: CASES,
        max_shrink_iters: 2_000,
        ..ProptestConfig::default()
    }
}

const VALID: &str = "project = \"P-2026-014\"\npurpose = \"MMR timeliness\"\ntable = \"antigen_doses\"\ncolumns = [\"person_key\", \"antigen\", \"birth_month\", \"sex\", \"commune\"]\nwhere = \"antigen = 'measles'\"\nquasi_identifiers = [\"birth_month\", \"sex\", \"commune\"]\nk = 5\nmax_suppressed_share = 0.05\n[generalise]\nbirth_month = [\"month\", \"quarter\"]\ncommune = [\"commune\", \"canton\"]\n";

/// A planted identity: a 13-digit national-number-like value and a marked name.
fn planted() -> impl Strategy<Value = (String, String)> {
    (1_000_000_000_000u64..10_000_000_000_000, "[a-z]{4,8}")
        .prop_map(|(number, name)| (number.to_string(), format!("Qzx{name}")))
}

/// A hostile replacement for one field's value, built around the planted identity.
fn hostile(number: &str, name: &str) -> Vec<String> {
    vec![
        format!("\"{number}\""),
        number.to_string(),
        format!("{number}{number}"),
        format!("\"{name}\""),
        format!("[\"{name}\", \"{number}\"]"),
        format!("{{ {name} = {number} }}"),
        format!("'{name}"),
        format!("\"{name}"),
        format!("\"antigen = '{number}' AND\""),
        format!("\"{number} {name} ((\""),
        format!("\"(SELECT {name} FROM x WHERE y = {number})\""),
        format!("[\"{name}\"]"),
        format!("\"\"\"{name}\n{number}\"\"\""),
        "-1".into(),
        "1e400".into(),
        "nan".into(),
        "99999999999999999999999".into(),
        "[]".into(),
        String::new(),
    ]
}

const FIELDS: [&str; 9] = [
    "project",
    "purpose",
    "table",
    "columns",
    "where",
    "quasi_identifiers",
    "k",
    "max_suppressed_share",
    "birth_month",
];

/// `VALID` with the value of `field` replaced (its line found by its key).
fn with_field(field: &str, value: &str) -> String {
    VALID
        .lines()
        .map(|line| {
            if line.starts_with(&format!("{field} = ")) {
                format!("{field} = {value}")
            } else {
                line.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn check(text: &str, secrets: &[&str]) -> Result<(), TestCaseError> {
    if let Err(error) = Spec::parse(text) {
        let error = error.to_string();
        for secret in secrets {
            prop_assert!(
                !error.contains(secret),
                "the error quotes {secret:?}: {error}\n--- input:\n{text}"
            );
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(config())]

    /// One field of a valid spec replaced by a hostile value, or a line of key = identity
    /// added, then optionally a BOM, CRLF or truncation.
    #[test]
    fn one_field_mutated((number, name) in planted(), field in 0..FIELDS.len() + 2,
                         pick in 0usize..64, damage in 0u8..4, cut in 0usize..400) {
        let values = hostile(&number, &name);
        let value = &values[pick % values.len()];
        let mut text = match field {
            f if f < FIELDS.len() => with_field(FIELDS[f], value),
            f if f == FIELDS.len() => format!("{VALID}{name} = {value}\n"),
            _ => format!("[{name}]\n{number} = 1\n{VALID}"),
        };
        match damage {
            1 => text = format!("\u{feff}{text}"),
            2 => text = text.replace('\n', "\r\n"),
            3 => {
                let mut at = cut.min(text.len());
                while !text.is_char_boundary(at) { at -= 1; }
                text.truncate(at);
            }
            _ => {}
        }
        check(&text, &[&number, &name])?;
    }

    /// Arbitrary bytes (read as the file would be: lossily as UTF-8), with an identity
    /// somewhere inside.
    #[test]
    fn arbitrary_bytes((number, name) in planted(), bytes in proptest::collection::vec(any::<u8>(), 0..512),
                       at in 0usize..512) {
        let mut text = String::from_utf8_lossy(&bytes).into_owned();
        let mut at = at.min(text.len());
        while !text.is_char_boundary(at) { at -= 1; }
        text.insert_str(at, &format!("{name}={number}"));
        check(&text, &[&number, &name])?;
    }
}

/// Deep nesting and huge values: an error (the parser's recursion limit, or a field check),
/// never a stack overflow, and no identity quoted.
#[test]
fn huge_and_deep_specs_are_refused_without_quoting() {
    let number = "1990010112345";
    for text in [
        format!(
            "project = {}{number}{}\n",
            "[".repeat(10_000),
            "]".repeat(10_000)
        ),
        format!("x = {}\n", "{ a = ".repeat(5_000)),
        with_field(
            "where",
            &format!("\"{}{number}{}\"", "(".repeat(5_000), ")".repeat(5_000)),
        ),
        with_field("project", &format!("\"{}\"", number.repeat(100_000))),
        with_field(
            "columns",
            &format!("[{}]", format!("\"{number}\", ").repeat(20_000)),
        ),
    ] {
        let error = Spec::parse(&text)
            .expect_err("not a valid spec")
            .to_string();
        assert!(
            !error.contains(number),
            "{}",
            &error[..error.len().min(500)]
        );
    }
}

/// The cases the properties first found, kept (each quoted an identity before the fix).
#[test]
fn found_cases_quote_nothing() {
    let number = "1990010112345";
    for (field, value) in [
        ("project", format!("\"{number}!\"")),
        ("table", format!("\"{number}\"")),
        ("columns", format!("[\"{number}\"]")),
        ("quasi_identifiers", format!("[\"{number}\"]")),
        ("birth_month", format!("[\"{number}\"]")),
        ("where", format!("\"antigen = '{number}' AND\"")),
        ("where", format!("\"{number} QzxName ((\"")),
        ("k", format!("\"{number}\"")),
    ] {
        let error = Spec::parse(&with_field(field, &value))
            .unwrap_err()
            .to_string();
        assert!(!error.contains(number), "{field}: {error}");
        assert!(!error.contains("Qzx"), "{field}: {error}");
    }
    let error = Spec::parse(&format!("{VALID}{number} = 1\n"))
        .unwrap_err()
        .to_string();
    assert!(!error.contains(number), "{error}");
    // Appended after `[generalise]`: a ladder that is a number, said with its place.
    assert!(
        error.contains("line 12, column 17: invalid type"),
        "{error}"
    );
}
