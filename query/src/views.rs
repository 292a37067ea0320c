//! Views defined in `sql/views/*.sql`, compiled in so a deployed binary cannot drift from
//! the SQL people read and review. Each view's behaviour is pinned by the `.slt` file
//! beside it (run by `logic_tests.rs`).

use datafusion::prelude::SessionContext;

use crate::QueryError;

/// A view and the relations it reads; it is created only when all of them exist, so a
/// fresh warehouse (no `vaccinations` yet) still opens.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ViewDefinition {
    pub name: &'static str,
    pub requires: &'static [&'static str],
    pub sql: &'static str,
}

/// In creation order: a view may read the ones before it.
pub(crate) const VIEWS: &[ViewDefinition] = &[
    ViewDefinition {
        name: "antigen_doses",
        requires: &["vaccinations", "vaccine_antigens"],
        sql: include_str!("../../sql/views/antigen_doses.sql"),
    },
    ViewDefinition {
        name: "persons",
        requires: &["vaccinations"],
        sql: include_str!("../../sql/views/persons.sql"),
    },
];

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
