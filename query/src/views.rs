//! Views defined in `sql/views/*.sql`, compiled in so a deployed binary cannot drift from
//! the SQL people read and review. Each view's behaviour is pinned by the `.slt` file
//! beside it (run by `logic_tests.rs`).

use datafusion::prelude::SessionContext;

use crate::QueryError;

/// The views, in creation order, as the catalogue describes them.
pub(crate) use vaxlake_catalog::VIEWS;

/// Creates every view whose relations are registered in `ctx`. A table of the same name
/// (materialised by the ingest) wins over the view.
pub(crate) async fn create_views(ctx: &SessionContext) -> Result<(), QueryError> {
    // The views' own functions.
    ctx.register_udaf(crate::latest::latest_by_udaf());
    let rules = vaxlake_catalog::validity::DoseRules::builtin()?;
    ctx.register_udwf(crate::validity_window::dose_validity_udwf(
        std::sync::Arc::new(rules),
    ));
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
    use std::path::Path;

    use super::*;

    #[test]
    fn every_view_file_is_compiled_in() {
        let directory = Path::new(env!("CARGO_MANIFEST_DIR")).join("../sql/views");
        for entry in std::fs::read_dir(directory).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|ext| ext == "sql") {
                let name = path.file_stem().unwrap().to_str().unwrap();
                assert!(
                    VIEWS.iter().any(|view| view.name == name),
                    "{} is not listed in query/src/views.rs VIEWS",
                    path.display()
                );
            }
        }
    }
}
