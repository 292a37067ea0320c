//! The `SOURCE` argument of `vaxlake ingest`.

use crate::error::IngestError;
use crate::postgres::PostgresSource;
use std::path::PathBuf;

/// Where records come from. The prefix decides the format (CONTRACTS.md "Inputs").
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// A FHIR Bulk Data export folder with `Patient*.ndjson` and `Immunization*.ndjson`.
    Fhir(PathBuf),
    /// A registry CSV export (e.g. the COVID-19 vaccination system's).
    RegistryCsv(PathBuf),
    /// Population denominators.
    Population(PathBuf),
    /// Case notifications.
    Cases(PathBuf),
    /// The persons who objected to research use (a CSV of national numbers).
    OptOut(PathBuf),
    /// The operational registry's database, pulled incrementally.
    Postgres(PostgresSource),
}

impl Source {
    pub fn parse(text: &str) -> Result<Self, IngestError> {
        let (kind, rest) = text
            .split_once(':')
            .ok_or_else(|| IngestError::UnknownSource(text.to_string()))?;
        if kind == "postgres" {
            return Ok(Source::Postgres(PostgresSource::new(rest, None)?));
        }
        let path = PathBuf::from(rest);
        match kind {
            "fhir" => Ok(Source::Fhir(path)),
            "csv" => Ok(Source::RegistryCsv(path)),
            "population" => Ok(Source::Population(path)),
            "cases" => Ok(Source::Cases(path)),
            "optout" => Ok(Source::OptOut(path)),
            // The text may be a connection string with a password: never echo it.
            _ => Err(IngestError::UnknownSource(format!("{kind}:..."))),
        }
    }

    /// A short label for the quarantine and the run log: kind plus file name, no directories.
    pub fn label(&self) -> &'static str {
        match self {
            Source::Fhir(_) => "fhir",
            Source::RegistryCsv(_) => "csv",
            Source::Population(_) => "population",
            Source::Cases(_) => "cases",
            Source::OptOut(_) => "optout",
            Source::Postgres(_) => "postgres",
        }
    }

    /// Reads the registry relation `table` instead of the default (`postgres:` sources only).
    pub fn with_table(self, table: &str) -> Result<Self, IngestError> {
        match self {
            Source::Postgres(source) => Ok(Source::Postgres(PostgresSource::new(
                &source.connection,
                Some(table),
            )?)),
            _ => Err(IngestError::Source(
                "--table applies to postgres: sources only".into(),
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_each_kind() {
        assert_eq!(
            Source::parse("fhir:/a/b").unwrap(),
            Source::Fhir("/a/b".into())
        );
        assert_eq!(
            Source::parse("csv:x.csv").unwrap(),
            Source::RegistryCsv("x.csv".into())
        );
        assert_eq!(
            Source::parse("population:p.csv").unwrap(),
            Source::Population("p.csv".into())
        );
        assert_eq!(
            Source::parse("cases:c.csv").unwrap(),
            Source::Cases("c.csv".into())
        );
        assert!(Source::parse("ftp:x").is_err());
        assert!(Source::parse("nocolon").is_err());
    }
}
