//! The generator plants a known influenza vaccine effectiveness: the infection hazard is
//! halved (VE = 0.5) from 14 days after the season's dose, while coverage and baseline risk
//! both rise with age, so the crude estimate is confounded by age. Over several seeds, the
//! Mantel–Haenszel estimate must recover 0.5 and the crude one must not.
//!
//! The season is 2024/25, whose 1 January population (reference year 2025) the generator
//! writes: earlier seasons would be measured against a later population, which is another
//! question than the one this test asks.

mod common;
use common::*;
use serde_json::Value;
use std::path::Path;

const TRUE_VE: f64 = 0.5;
const Z95: f64 = 1.959964;
/// Each of the four seeds is held to a 98.75 % interval (Bonferroni: 0.05 / 4 two-sided), so
/// that the four checks together are a 95 % check. With four separate 95 % intervals an
/// unbiased engine would fail 1 − 0.95⁴ ≈ 19 % of generator realisations.
const Z_EACH_SEED: f64 = 2.497705;
const SEEDS: [u64; 4] = [1, 2, 3, 4];

/// Cases and person-days of one (seed, season, age band) stratum, read from the answer.
#[derive(Debug, Clone, Copy)]
struct Stratum {
    a: f64,
    b: f64,
    t1: f64,
    t0: f64,
}

fn effectiveness(wh: &Path, season: i32) -> Value {
    let from = format!("{season}-10-01");
    let to = format!("{}-04-30", season + 1);
    let (out, _) = ok(&[
        "effectiveness",
        "--warehouse",
        wh.to_str().unwrap(),
        "--antigen",
        "influenza",
        "--disease",
        "J1",
        "--from",
        &from,
        "--to",
        &to,
        "--by",
        "age_band",
        "--suppression-threshold",
        "1",
        "--format",
        "json",
    ]);
    serde_json::from_str(&out).expect("JSON")
}

fn stratum(row: &Value) -> Stratum {
    let number = |field: &str| {
        row[field]
            .as_f64()
            .unwrap_or_else(|| panic!("{field} in {row}"))
    };
    Stratum {
        a: number("cases_vaccinated"),
        b: number("cases_unvaccinated"),
        t1: number("person_days_vaccinated"),
        t0: number("person_days_unvaccinated"),
    }
}

/// The Mantel–Haenszel rate ratio and its 95 % interval (Greenland–Robins), written out here
/// from the textbook formula, independently of the engine.
fn mantel_haenszel(strata: &[Stratum], z: f64) -> (f64, f64, f64) {
    let (mut r, mut s, mut v) = (0.0, 0.0, 0.0);
    for x in strata.iter().filter(|x| x.t1 > 0.0 && x.t0 > 0.0) {
        let t = x.t1 + x.t0;
        r += x.a * x.t0 / t;
        s += x.b * x.t1 / t;
        v += (x.a + x.b) * x.t1 * x.t0 / (t * t);
    }
    let irr = r / s;
    let se = (v / (r * s)).sqrt();
    (irr, (irr.ln() - z * se).exp(), (irr.ln() + z * se).exp())
}

#[test]
fn mantel_haenszel_recovers_the_planted_effectiveness_and_crude_does_not() {
    let dir = tempfile::tempdir().unwrap();
    let mut all_strata = Vec::new();
    let mut pooled = Stratum {
        a: 0.0,
        b: 0.0,
        t1: 0.0,
        t0: 0.0,
    };
    let mut estimates = Vec::new();
    for seed in SEEDS {
        let export = dir.path().join(format!("export-{seed}"));
        let wh = dir.path().join(format!("wh-{seed}"));
        let key = key_file(dir.path(), &format!("k{seed}"));
        generate(&export, 60000, seed);
        for source in [
            format!("fhir:{}", export.join("fhir").display()),
            format!("population:{}", export.join("population.csv").display()),
            format!("cases:{}", export.join("cases.csv").display()),
        ] {
            ingest(&wh, &key, &source);
        }
        for season in [2024] {
            let answer = effectiveness(&wh, season);
            let overall = &answer["overall"];
            let crude = &answer["crude"];
            let ve = overall["ve"].as_f64().unwrap_or_else(|| panic!("{answer}"));
            // The engine's MH agrees with the formula applied to its own band rows.
            let strata: Vec<Stratum> = answer["rows"]
                .as_array()
                .unwrap()
                .iter()
                .map(stratum)
                .collect();
            let (irr, irr_low, irr_high) = mantel_haenszel(&strata, Z_EACH_SEED);
            assert!((1.0 - irr - ve).abs() < 1e-3, "{answer}");
            // ... and so does its 95 % interval (Greenland–Robins).
            let (_, low95, high95) = mantel_haenszel(&strata, Z95);
            for (field, expected) in [("ci_low", 1.0 - high95), ("ci_high", 1.0 - low95)] {
                let got = overall[field]
                    .as_f64()
                    .unwrap_or_else(|| panic!("{answer}"));
                assert!(
                    (got - expected).abs() < 1e-3,
                    "{field}: {got} vs {expected}"
                );
            }
            let (low, high) = (1.0 - irr_high, 1.0 - irr_low);
            estimates.push((seed, season, ve, low, high, crude["ve"].as_f64()));
            assert!(
                low <= TRUE_VE && TRUE_VE <= high,
                "seed {seed}, season {season}: MH VE {ve} (98.75 % interval {low}, {high}) \
                 misses {TRUE_VE}"
            );
            for x in &strata {
                pooled.a += x.a;
                pooled.b += x.b;
                pooled.t1 += x.t1;
                pooled.t0 += x.t0;
            }
            all_strata.extend(strata);
        }
    }
    println!("seed, season, MH VE (98.75 % interval), crude VE: {estimates:#?}");

    // Over every seed and band, the adjusted estimate is within a few points of the truth,
    // with an interval that covers it; the crude one is visibly below it.
    let (irr, irr_low, irr_high) = mantel_haenszel(&all_strata, Z95);
    let (ve, ve_low, ve_high) = (1.0 - irr, 1.0 - irr_high, 1.0 - irr_low);
    assert!(
        (ve - TRUE_VE).abs() < 0.08,
        "pooled MH VE {ve} ({ve_low}, {ve_high}) is not within 8 points of {TRUE_VE}"
    );
    assert!(ve_low <= TRUE_VE && TRUE_VE <= ve_high);
    let crude = 1.0 - (pooled.a / pooled.t1) / (pooled.b / pooled.t0);
    assert!(
        crude < TRUE_VE - 0.15,
        "the crude VE {crude} should be confounded by age (well below {TRUE_VE})"
    );
}
