//! A tiny warehouse with hand-checked contents, written with deltalake the way the ingest
//! writes it.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::array::{
    ArrayRef, Date32Array, Int32Array, RecordBatch, StringArray, TimestampMicrosecondArray,
};
use arrow::datatypes::{DataType, Field, Schema, TimeUnit};
use deltalake::DeltaTable;
use url::Url;

pub const PERSON_A: &str = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
pub const PERSON_B: &str = "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";

/// One row of `vaccinations`, with the fields the tests vary.
pub struct Dose {
    pub event: &'static str,
    pub person: &'static str,
    pub birth_month: &'static str,
    pub atc: &'static str,
    pub administered_on: &'static str,
    pub age_months: i32,
    pub status: &'static str,
}

/// The first ingest. Person A (born 2023-01):
/// * 2023-03-01 hexavalent (J07CA09) + DTaP-IPV (J07CA02) + MMR (J07BD52) the same day:
///   diphtheria, tetanus, pertussis, polio are in two vaccines but count once;
/// * 2023-05-01 hexavalent again: second dose of its six antigens;
/// * 2023-07-01 hexavalent not done: no dose;
/// * 2024-01-15 MMR: second dose of measles, mumps, rubella.
///
/// Person B (born 2022-06): 2022-08-01 hexavalent, 2023-10-01 influenza (J07BB02).
pub fn first_doses() -> Vec<Dose> {
    let a = |event, atc, administered_on, age_months, status| Dose {
        event,
        person: PERSON_A,
        birth_month: "2023-01-01",
        atc,
        administered_on,
        age_months,
        status,
    };
    let b = |event, atc, administered_on, age_months| Dose {
        event,
        person: PERSON_B,
        birth_month: "2022-06-01",
        atc,
        administered_on,
        age_months,
        status: "completed",
    };
    vec![
        a("e1", "J07CA09", "2023-03-01", 2, "completed"),
        a("e2", "J07BD52", "2023-03-01", 2, "completed"),
        a("e3", "J07CA02", "2023-03-01", 2, "completed"),
        a("e4", "J07CA09", "2023-05-01", 4, "completed"),
        a("e5", "J07CA09", "2023-07-01", 6, "not-done"),
        a("e6", "J07BD52", "2024-01-15", 12, "completed"),
        b("e7", "J07CA09", "2022-08-01", 2),
        b("e8", "J07BB02", "2023-10-01", 16),
    ]
}

/// The second ingest: person B's second hexavalent dose.
pub fn second_doses() -> Vec<Dose> {
    vec![Dose {
        event: "e9",
        person: PERSON_B,
        birth_month: "2022-06-01",
        atc: "J07CA09",
        administered_on: "2022-10-01",
        age_months: 4,
        status: "completed",
    }]
}

fn days(date: &str) -> i32 {
    let mut parts = date.split('-').map(|part| part.parse::<i64>().unwrap());
    let (year, month, day) = (
        parts.next().unwrap(),
        parts.next().unwrap(),
        parts.next().unwrap(),
    );
    // Days from civil (Howard Hinnant's algorithm).
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year - era * 400;
    let day_of_year = (153 * ((month + 9) % 12) + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    (era * 146_097 + day_of_era - 719_468) as i32
}

fn hex(text: &str) -> String {
    // Keys are 32 hex characters; pad the short test names.
    format!(
        "{:0>32}",
        text.bytes().map(|b| format!("{b:02x}")).collect::<String>()
    )
}

pub fn vaccinations_batch(doses: &[Dose]) -> RecordBatch {
    let utc = || DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()));
    let schema = Arc::new(Schema::new(vec![
        Field::new("event_key", DataType::Utf8, false),
        Field::new("person_key", DataType::Utf8, false),
        Field::new("birth_month", DataType::Date32, false),
        Field::new("sex", DataType::Utf8, false),
        Field::new("commune", DataType::Utf8, true),
        Field::new("canton", DataType::Utf8, true),
        Field::new("administered_on", DataType::Date32, false),
        Field::new("age_months_at_dose", DataType::Int32, false),
        Field::new("vaccine_atc", DataType::Utf8, false),
        Field::new("vaccine_name", DataType::Utf8, false),
        Field::new("lot_number", DataType::Utf8, true),
        Field::new("dose_number_recorded", DataType::Int32, true),
        Field::new("status", DataType::Utf8, false),
        Field::new("vaccinator_key", DataType::Utf8, true),
        Field::new("source_system", DataType::Utf8, false),
        Field::new("recorded_at", utc(), true),
        Field::new("ingested_at", utc(), false),
        Field::new("last_updated", utc(), false),
        Field::new("birth_decade", DataType::Int32, false),
    ]));
    let strings = |f: &dyn Fn(&Dose) -> String| -> ArrayRef {
        Arc::new(StringArray::from(doses.iter().map(f).collect::<Vec<_>>()))
    };
    let dates = |f: &dyn Fn(&Dose) -> &str| -> ArrayRef {
        Arc::new(Date32Array::from(
            doses.iter().map(|dose| days(f(dose))).collect::<Vec<_>>(),
        ))
    };
    let instants = |f: &dyn Fn(&Dose) -> &str| -> ArrayRef {
        Arc::new(
            TimestampMicrosecondArray::from(
                doses
                    .iter()
                    .map(|dose| i64::from(days(f(dose))) * 86_400_000_000 + 36_000_000_000)
                    .collect::<Vec<_>>(),
            )
            .with_timezone("UTC"),
        )
    };
    let columns: Vec<ArrayRef> = vec![
        strings(&|dose| hex(dose.event)),
        strings(&|dose| dose.person.to_string()),
        dates(&|dose| dose.birth_month),
        strings(&|dose| {
            if dose.person == PERSON_A {
                "female"
            } else {
                "male"
            }
            .to_string()
        }),
        strings(&|_| "Wiltz".to_string()),
        strings(&|_| "Wiltz".to_string()),
        dates(&|dose| dose.administered_on),
        Arc::new(Int32Array::from(
            doses.iter().map(|dose| dose.age_months).collect::<Vec<_>>(),
        )),
        strings(&|dose| dose.atc.to_string()),
        strings(&|dose| format!("vaccine {}", dose.atc)),
        strings(&|dose| format!("LOT-{}", dose.event)),
        Arc::new(Int32Array::from(vec![None::<i32>; doses.len()])),
        strings(&|dose| dose.status.to_string()),
        strings(&|_| hex("vaccinator")),
        strings(&|_| "test".to_string()),
        instants(&|dose| dose.administered_on),
        instants(&|_| "2024-06-01"),
        instants(&|dose| dose.administered_on),
        Arc::new(Int32Array::from(vec![2020; doses.len()])),
    ];
    RecordBatch::try_new(schema, columns).unwrap()
}

/// Appends `doses` to `<root>/vaccinations` (creating the table the first time), as a
/// Delta commit; returns the new version.
pub async fn write_vaccinations(root: &Path, doses: &[Dose]) -> u64 {
    let directory = root.join("vaccinations");
    std::fs::create_dir_all(&directory).unwrap();
    let url = Url::from_directory_path(&directory).unwrap();
    let table = DeltaTable::try_from_url(url).await.unwrap();
    let table = table
        .write(vec![vaccinations_batch(doses)])
        .with_partition_columns(["birth_decade"])
        .await
        .unwrap();
    table.version().unwrap()
}

/// Every file under `root`, with its size: what "nothing was written" is checked against.
pub fn files_under(root: &Path) -> Vec<(PathBuf, u64)> {
    let mut files = Vec::new();
    let mut pending = vec![root.to_path_buf()];
    while let Some(directory) = pending.pop() {
        for entry in std::fs::read_dir(&directory).unwrap() {
            let entry = entry.unwrap();
            let metadata = entry.metadata().unwrap();
            if metadata.is_dir() {
                pending.push(entry.path());
            } else {
                files.push((entry.path(), metadata.len()));
            }
        }
    }
    files.sort();
    files
}
