//! `cargo run --release -p vaxlake-generate --example gen -- [PERSONS] [SEED] [OUT]`:
//! generates the synthetic export and prints the time it took and the manifest's counts.

use std::time::Instant;
use vaxlake_generate::{generate, GenerateOptions};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let persons = args.first().and_then(|a| a.parse().ok()).unwrap_or(670_000);
    let seed = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(1);
    let out = args
        .get(2)
        .cloned()
        .unwrap_or_else(|| "target/generate-demo".to_string());
    let started = Instant::now();
    let opts = GenerateOptions::default()
        .with_persons(persons)
        .with_seed(seed);
    match generate(&opts, out.as_ref()) {
        Ok(m) => {
            let secs = started.elapsed().as_secs_f64();
            println!("generated {persons} persons (seed {seed}) into {out} in {secs:.2} s");
            println!(
                "Patient lines {}, Immunization lines {}, registry.csv rows {}, population rows {}, case rows {}",
                m.fhir.patient_lines, m.fhir.immunization_lines, m.csv.rows, m.population.rows, m.cases.rows
            );
            println!(
                "FHIR accepted {} quarantined {} current {}; CSV current {}; both {}",
                m.fhir.expected_accepted,
                m.fhir.expected_quarantined,
                m.fhir.current_events,
                m.csv.current_events,
                m.current_events_fhir_and_csv
            );
        }
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(1);
        }
    }
}
