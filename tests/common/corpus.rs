//! The corpus of hostile SQL (`tests/sql_sandbox_corpus.tsv`), read for the tests that fire
//! it: at `/api/sql` (tests/sql_sandbox.rs) and through every door (tests/sql_doors.rs).

use std::path::{Path, PathBuf};

/// One statement of the corpus, its placeholders filled in.
#[derive(Debug, Clone)]
pub struct Entry {
    pub line: usize,
    /// The expected outcome's word (`refused`, `memory`, ...; see the corpus's header).
    pub outcome: String,
    pub abuse: String,
    pub sql: String,
}

/// The directories the corpus's placeholders stand for.
pub struct Places {
    pub warehouse: PathBuf,
    pub export: PathBuf,
    pub outside: PathBuf,
}

/// Every statement of the corpus.
pub fn entries(places: &Places) -> Vec<Entry> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/sql_sandbox_corpus.tsv");
    let text = std::fs::read_to_string(&path).unwrap();
    text.lines()
        .enumerate()
        .filter(|(_, line)| !line.trim().is_empty() && !line.starts_with('#'))
        .map(|(index, line)| {
            let mut columns = line.splitn(3, '\t');
            let (Some(outcome), Some(abuse), Some(sql)) =
                (columns.next(), columns.next(), columns.next())
            else {
                panic!(
                    "corpus line {}: expected three tab-separated columns",
                    index + 1
                );
            };
            Entry {
                line: index + 1,
                outcome: outcome.to_string(),
                abuse: abuse.to_string(),
                sql: expand(sql, places),
            }
        })
        .collect()
}

/// Fills in `{{OUTSIDE}}`, `{{WAREHOUSE}}`, `{{EXPORT}}` and `{{N*TEXT}}`.
fn expand(sql: &str, places: &Places) -> String {
    let mut out = String::new();
    let mut rest = sql;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let end = rest[start..]
            .find("}}")
            .expect("an unclosed {{ in the corpus")
            + start;
        let inner = &rest[start + 2..end];
        match inner {
            "OUTSIDE" => out.push_str(places.outside.to_str().unwrap()),
            "WAREHOUSE" => out.push_str(places.warehouse.to_str().unwrap()),
            "EXPORT" => out.push_str(places.export.to_str().unwrap()),
            repeat => {
                let (count, text) = repeat.split_once('*').expect("{{N*TEXT}}");
                out.push_str(&text.repeat(count.parse().expect("a count")));
            }
        }
        rest = &rest[end + 2..];
    }
    out.push_str(rest);
    out
}
