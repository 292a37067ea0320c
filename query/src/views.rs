//! Views defined in `sql/views/*.sql`, compiled in so a deployed binary cannot drift from
//! the SQL people read and review. Each view's behaviour is pinned by the `.slt` file
//! beside it (run by this module's tests).

use datafusion::prelude::SessionContext;

use crate::QueryError;

/// The views, in creation order, as the catalogue describes them.
pub(crate) use vaxlake_catalog::VIEWS;

/// Creates every view whose relations are registered in `ctx`. A table of the same name
/// (materialised by the ingest) wins over the view.
pub(crate) async fn create_views(ctx: &SessionContext) -> Result<(), QueryError> {
    // The views' own functions.
    ctx.register_udaf(crate::latest::latest_by_udaf());
    for view in VIEWS {
        if ctx.table_exist(view.name)? {
            continue;
        }
        let mut present = true;
        for required in view.requires {
            present &= ctx.table_exist(*required)?;
        }
        if present {
            ctx.sql(view.sql).await?.collect().await?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    //! A small runner for the sqllogictest format (`statement ok`, `statement error`,
    //! `query <types> [nosort|rowsort]` with expected rows after `----`), enough for the
    //! view files; the `sqllogictest` crate can run the same files if they outgrow it.

    use std::path::{Path, PathBuf};

    use arrow::util::display::{ArrayFormatter, FormatOptions};

    use super::*;
    use crate::reference::ReferenceTables;

    fn views_directory() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../sql/views")
    }

    fn files_with_extension(extension: &str) -> Vec<PathBuf> {
        let mut files: Vec<PathBuf> = std::fs::read_dir(views_directory())
            .unwrap()
            .map(|entry| entry.unwrap().path())
            .filter(|path| path.extension().is_some_and(|ext| ext == extension))
            .collect();
        files.sort();
        files
    }

    #[test]
    fn every_view_file_is_compiled_in() {
        for path in files_with_extension("sql") {
            let name = path.file_stem().unwrap().to_str().unwrap();
            assert!(
                VIEWS.iter().any(|view| view.name == name),
                "{} is not listed in query/src/views.rs VIEWS",
                path.display()
            );
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn view_logic_tests() {
        let files = files_with_extension("slt");
        assert!(!files.is_empty());
        for path in files {
            run_file(&path).await;
        }
    }

    async fn run_file(path: &Path) {
        let text = std::fs::read_to_string(path).unwrap();
        let config = datafusion::prelude::SessionConfig::new().with_information_schema(true);
        let ctx = SessionContext::new_with_config(config);
        for (name, table) in ReferenceTables::load().unwrap().tables {
            ctx.register_table(name, table).unwrap();
        }
        let mut views_created = false;
        let lines: Vec<&str> = text.lines().collect();
        let mut index = 0;
        while index < lines.len() {
            let line = lines[index].trim_end();
            index += 1;
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let location = format!("{}:{index}", path.display());
            let header: Vec<&str> = line.split_whitespace().collect();
            let mut sql = Vec::new();
            while index < lines.len() && !lines[index].trim().is_empty() && lines[index] != "----" {
                sql.push(lines[index]);
                index += 1;
            }
            let sql = sql.join("\n");
            match header.as_slice() {
                ["statement", "ok"] => {
                    let result = async { ctx.sql(&sql).await?.collect().await }.await;
                    result.unwrap_or_else(|error| panic!("{location}: {error}"));
                }
                ["statement", "error", ..] => {
                    let result = async { ctx.sql(&sql).await?.collect().await }.await;
                    assert!(result.is_err(), "{location}: expected an error");
                }
                ["query", _types, sort @ ..] => {
                    if !views_created {
                        create_views(&ctx).await.unwrap();
                        views_created = true;
                    }
                    assert_eq!(lines.get(index), Some(&"----"), "{location}: no ----");
                    index += 1;
                    let mut expected = Vec::new();
                    while index < lines.len() && !lines[index].trim().is_empty() {
                        expected.push(lines[index].trim_end().to_string());
                        index += 1;
                    }
                    let batches = async { ctx.sql(&sql).await?.collect().await }
                        .await
                        .unwrap_or_else(|error| panic!("{location}: {error}"));
                    let mut actual = Vec::new();
                    let options = FormatOptions::default().with_null("NULL");
                    for batch in &batches {
                        let formatters: Vec<_> = batch
                            .columns()
                            .iter()
                            .map(|column| ArrayFormatter::try_new(column, &options).unwrap())
                            .collect();
                        for row in 0..batch.num_rows() {
                            let cells: Vec<String> = formatters
                                .iter()
                                .map(|formatter| match formatter.value(row).to_string() {
                                    empty if empty.is_empty() => "(empty)".to_string(),
                                    cell => cell,
                                })
                                .collect();
                            actual.push(cells.join(" "));
                        }
                    }
                    if sort == ["rowsort"] {
                        actual.sort();
                        expected.sort();
                    }
                    assert_eq!(actual, expected, "{location}: {sql}");
                }
                other => panic!("{location}: unknown record {other:?}"),
            }
        }
    }
}
