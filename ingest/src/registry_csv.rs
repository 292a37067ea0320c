//! Registry CSV exports (`csv:FILE`), e.g. the COVID-19 vaccination system's.

use crate::catalogue::vaccine_or_reason;
use crate::csv_rows::Fields;
use crate::dates::{days, parse_date, parse_instant_micros};
use crate::fhir::{event_key, place, sex, stored_text};
use crate::row::Vaccination;
use chrono::NaiveDate;
use std::sync::Arc;
use vaxlake_pseudonymize::{
    age_in_completed_months, birth_month, national_id, IdKind, Pseudonymizer,
};

/// The columns of CONTRACTS.md "Registry CSV", in the order `parse_row` reads them.
pub const COLUMNS: &[&str] = &vaxlake_catalog::sources::REGISTRY_COLUMNS;

/// Turns one registry row into a vaccination, or says why not (never quoting an identity).
pub fn parse_row(
    f: &Fields,
    line: u64,
    p: &Pseudonymizer,
    source_system: &Arc<str>,
    today: NaiveDate,
) -> Result<Vaccination, String> {
    let event_id = f.opt(0).ok_or("event_id is empty")?;
    let number = national_id::normalise(f.get(1)).map_err(|e| e.to_string())?;
    let birth = match f.opt(2) {
        Some(t) => parse_date(t).ok_or("birth_date is not a date YYYY-MM-DD")?,
        None => national_id::birth_date(&number).ok_or("birth_date is empty")?,
    };
    if birth > today {
        return Err("birth_date is in the future".into());
    }
    let sex = sex(f.opt(3))?;
    let (commune, canton) = place(f.opt(4), None);
    let atc = f.get(5);
    let vaccine = vaccine_or_reason(atc)?;
    let dose_number_recorded = match f.opt(8) {
        None => None,
        Some(t) => Some(
            t.parse::<i32>()
                .ok()
                .filter(|d| *d > 0)
                .ok_or("dose_number is not a positive integer")?,
        ),
    };
    let administered = f
        .opt(9)
        .ok_or("administered_on is empty")
        .and_then(|t| parse_date(t).ok_or("administered_on is not a date YYYY-MM-DD"))?;
    if administered < birth {
        return Err("dose given before the birth date".into());
    }
    if administered > today {
        return Err("dose date is in the future".into());
    }
    let status = match f.get(11) {
        "completed" => "completed",
        "entered-in-error" => "entered-in-error",
        "not-done" => "not-done",
        _ => return Err("status must be completed, entered-in-error or not-done".into()),
    };
    let lot_number = match f.opt(7) {
        Some(lot) => Some(stored_text("lot_number", lot)?.to_string()),
        None => None,
    };
    let recorded_at = match f.opt(12) {
        None => None,
        Some(t) => Some(parse_instant_micros(t).ok_or("recorded_at is not a date-time")?),
    };
    Ok(Vaccination {
        event_key: event_key(p, source_system, event_id),
        person_key: p.pseudonym_bytes(IdKind::Person, number.as_bytes()),
        birth_month: days(birth_month(birth)),
        birth_decade: crate::schema::birth_decade(birth),
        sex,
        commune,
        canton,
        administered_on: days(administered),
        age_months_at_dose: age_in_completed_months(birth, administered),
        vaccine_atc: &vaccine.atc_code,
        vaccine_name: crate::catalogue::vaccine_name(vaccine, f.opt(6)),
        lot_number,
        dose_number_recorded,
        status,
        vaccinator_key: f
            .opt(10)
            .map(|v| p.pseudonym_bytes(IdKind::Practitioner, v.as_bytes())),
        source_system: source_system.clone(),
        recorded_at,
        // The COVID system has no version field: the time it recorded the row is the version
        // a CSV export's newest-wins compares. Rows pulled from the registry database do not
        // use it to decide: each supersedes the stored row (`table::Precedence::Supersedes`).
        last_updated: recorded_at.unwrap_or(0),
        position: line,
    })
}

/// The `persons` row a registry row gives: resident when its commune is in the reference
/// list, dated by the row's `recorded_at`.
pub fn person_row(v: &Vaccination) -> crate::persons::PersonRow {
    crate::persons::PersonRow {
        person_key: v.person_key,
        birth_month: v.birth_month,
        sex: v.sex,
        commune: v.commune,
        canton: v.canton,
        resident: v.commune.is_some(),
        deceased_month: None,
        last_updated: v.last_updated,
        known_from: crate::persons::KnownFrom::Registry,
        position: v.position,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::progress::Progress;
    use crate::row::{Parsed, Rejected};
    use vaxlake_pseudonymize::MasterKey;

    async fn parse(body: &str) -> (Vec<Vaccination>, Vec<Rejected>, u64) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("registry.csv");
        std::fs::write(
            &path,
            format!("{}\n{body}", vaxlake_catalog::sources::registry_header()),
        )
        .unwrap();
        let p = Pseudonymizer::new(&MasterKey::from_hex(&"22".repeat(32)).unwrap());
        let system: Arc<str> = "covid19".into();
        let today = NaiveDate::from_ymd_opt(2025, 12, 31).unwrap();
        let q = p.clone();
        let mut rx = crate::csv_rows::spawn(
            &path,
            "csv:registry.csv".into(),
            COLUMNS,
            Progress::hidden(),
            move |raw| crate::fhir::record_hash(&q, raw),
            move |f, line| parse_row(f, line, &p, &system, today),
        )
        .unwrap();
        let mut all: Parsed<Vaccination> = Parsed::default();
        while let Some(part) = rx.recv().await {
            let mut part = part.unwrap();
            all.read += part.read;
            all.rows.append(&mut part.rows);
            all.rejected.append(&mut part.rejected);
        }
        (all.rows, all.rejected, all.read)
    }

    #[tokio::test]
    async fn good_and_bad_rows() {
        let good = "CV-1,1893120105732,1893-12-01,female,Wiltz,J07BN01,Comirnaty,FF1234,1,2021-04-01,VAC-9,completed,2021-04-01T12:00:00Z";
        let rows = [
            good.to_string(),
            good.replace("1893120105732", "1893120105733"),
            good.replace("J07BN01", "J07ZZ99"),
            good.replace("2021-04-01,VAC", "1890-01-01,VAC"),
            good.replace("2021-04-01,VAC", "01/04/2021,VAC"),
            good.replace(",completed,", ",completed,extra,"),
            good.replace(",1,2021", ",zero,2021"),
            good.replace("FF1234", "LOT 1893120105732"),
        ];
        let (ok, rejected, read) = parse(&(rows.join("\n") + "\n")).await;
        assert_eq!(read, 8);
        assert_eq!(ok.len(), 1);
        let v = &ok[0];
        assert_eq!(v.vaccine_atc, "J07BN01");
        assert_eq!((v.commune, v.canton), (Some("Wiltz"), Some("Wiltz")));
        assert_eq!(v.dose_number_recorded, Some(1));
        assert_eq!(v.position, 2, "line 2: the header is line 1");
        let reasons: Vec<(u64, &str)> = rejected
            .iter()
            .map(|r| (r.line, r.reason.as_str()))
            .collect();
        assert_eq!(reasons.len(), 7);
        assert!(
            reasons[0].1.contains("Verhoeff") && reasons[0].0 == 3,
            "{reasons:?}"
        );
        assert!(reasons[1].1.contains("unknown ATC code J07ZZ99"));
        assert!(reasons[2].1.contains("before the birth date"));
        assert!(reasons[3].1.contains("administered_on is not a date"));
        assert!(reasons[4].1.contains("expected 13 fields, found 14"));
        assert!(reasons[5].1.contains("dose_number"));
        assert_eq!(reasons[6].1, "lot_number holds a national number");
        for (_, r) in &reasons {
            assert!(!r.contains("1893120105"));
        }
    }

    #[tokio::test]
    async fn a_missing_column_refuses_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.csv");
        std::fs::write(&path, "event_id,national_id\nA,1\n").unwrap();
        let err = crate::csv_rows::spawn(
            &path,
            "csv:x.csv".into(),
            COLUMNS,
            Progress::hidden(),
            |_| [0; 16],
            |_, _| Ok(()),
        )
        .map(|_| ())
        .unwrap_err()
        .to_string();
        assert!(err.contains("no column 'birth_date'"), "{err}");
    }
}
