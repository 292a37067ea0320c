//! The views of `sql/views/*.sql`, compiled in so a deployed binary cannot drift from the
//! SQL people read and review, with the columns they offer.

use crate::column::ColumnType::{Boolean, Date, Int32, Text};
use crate::column::Generalise::{BirthMonth, Canton, Commune, Suppress};
use crate::column::Role::{Date as Day, Identity, Measure, QuasiIdentifier};
use crate::column::{Column, IdKind};

/// A view, the relations it reads (it is created only when all of them exist, so a fresh
/// warehouse still opens) and its columns.
#[derive(Debug, Clone, Copy)]
pub struct View {
    pub name: &'static str,
    pub requires: &'static [&'static str],
    pub sql: &'static str,
    /// In the order the view returns them.
    pub columns: &'static [Column],
    /// Offered to researcher extracts (its [`Column::extractable`] columns).
    pub extracts: bool,
}

impl View {
    /// The column called `name`.
    pub fn column(&self, name: &str) -> Option<&'static Column> {
        self.columns.iter().find(|c| c.name == name)
    }
}

/// In creation order: a view may read the ones before it.
pub static VIEWS: &[View] = &[View {
    name: "antigen_doses",
    requires: &["vaccinations", "vaccine_antigens"],
    sql: include_str!("../../sql/views/antigen_doses.sql"),
    columns: &[
        Column::required("person_key", Text, Identity(IdKind::Person)),
        Column::required("antigen", Text, Measure),
        Column::optional("dose_seq", Int32, Measure),
        Column::required("administered_on", Date, Day),
        Column::optional("age_months_at_dose", Int32, Measure),
        Column::optional("birth_month", Date, QuasiIdentifier(BirthMonth)),
        Column::optional("sex", Text, QuasiIdentifier(Suppress)),
        Column::optional("commune", Text, QuasiIdentifier(Commune)),
        Column::optional("canton", Text, QuasiIdentifier(Canton)),
        Column::required("valid", Boolean, Measure),
        Column::optional("invalid_reason", Text, Measure),
    ],
    extracts: true,
}];

/// The view called `name`.
pub fn view(name: &str) -> Option<&'static View> {
    VIEWS.iter().find(|v| v.name == name)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each view's SQL creates the view of its name and selects its columns.
    #[test]
    fn the_sql_names_the_view_and_its_columns() {
        for v in VIEWS {
            assert!(
                v.sql.contains(&format!("CREATE VIEW {} AS", v.name)),
                "{}",
                v.name
            );
            for c in v.columns {
                assert!(v.sql.contains(c.name), "{}.{}", v.name, c.name);
            }
        }
    }
}
