//! k-anonymity over the spec's quasi-identifiers, reached by full-domain generalisation:
//! one level per quasi-identifier, applied to every record (ladders tried finest first), then
//! suppression of the records still in equivalence classes smaller than k. Among the level
//! combinations whose suppression stays within the spec's share, the least generalised one
//! wins (smallest sum of ladder steps, then the earlier quasi-identifiers kept finer), as
//! ARX's optimal full-domain search would choose with a height metric.

use std::collections::HashMap;

use serde::Serialize;

use crate::spec::{levels, ColumnKind};

/// One quasi-identifier's values, finest first, and how to coarsen them.
pub struct QuasiIdentifier<'a> {
    pub name: &'a str,
    pub kind: ColumnKind,
    pub ladder: &'a [String],
    /// The level the values are stored at ([`crate::spec::stored_precision`]): a level no
    /// coarser than it generalises nothing.
    pub precision: &'a str,
    /// The finest values (dates as `YYYY-MM-DD`), one per record; `None` is null.
    pub values: Vec<Option<String>>,
    /// For communes: each record's canton (the next rung up).
    pub cantons: Option<Vec<Option<String>>>,
}

/// `value` at `level` (see [`crate::spec::levels`]).
pub fn generalise(kind: ColumnKind, level: &str, value: &str, canton: Option<&str>) -> String {
    match (kind, level) {
        (_, "*") => "*".to_string(),
        (ColumnKind::Date, "day") => value.to_string(),
        (ColumnKind::Date, "month") => value.get(..7).unwrap_or(value).to_string(),
        (ColumnKind::Date, "quarter") => {
            let month: u32 = value.get(5..7).and_then(|m| m.parse().ok()).unwrap_or(1);
            format!("{}-Q{}", value.get(..4).unwrap_or(value), month.div_ceil(3))
        }
        (ColumnKind::Date, "year") => value.get(..4).unwrap_or(value).to_string(),
        (ColumnKind::Commune, "canton") => canton.unwrap_or("*").to_string(),
        (ColumnKind::Commune | ColumnKind::Canton, "country") => "Luxembourg".to_string(),
        _ => value.to_string(),
    }
}

/// What anonymisation did, for the manifest.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Anonymised {
    /// The level chosen for each quasi-identifier.
    pub levels: Vec<(String, String)>,
    /// Records kept (true) or suppressed (false), in input order.
    #[serde(skip)]
    pub keep: Vec<bool>,
    /// Each quasi-identifier's released values, in input order (`None`: null).
    #[serde(skip)]
    pub released: Vec<Vec<Option<String>>>,
    pub records_in: u64,
    pub records_suppressed: u64,
    /// Released records with at least one non-null quasi-identifier released at a level
    /// coarser than the one it is stored at (a birth month released as a month, a commune
    /// as a commune, is not generalised).
    pub records_generalised: u64,
    /// The smallest equivalence class released (the k achieved).
    pub k_achieved: u64,
    pub risk: Risk,
}

/// Re-identification risk of the released records under the prosecutor model (ARX's
/// figures): each record's risk is 1 / the size of its equivalence class.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Risk {
    pub model: &'static str,
    /// Risk above which a record counts as at risk (1/k).
    pub threshold: f64,
    pub records_at_risk: u64,
    pub records_at_risk_share: f64,
    pub highest_risk: f64,
    /// Mean record risk: equivalence classes / records.
    pub average_risk: f64,
    pub equivalence_classes: u64,
}

/// Why k could not be reached.
#[derive(Debug, Clone, PartialEq)]
pub struct Unreachable {
    pub suppressed_at_best: u64,
    pub records: u64,
}

/// Chooses levels and suppressed records so that every released class has at least `k`
/// records and at most `max_share` of the records are suppressed.
pub fn anonymise(
    qis: &[QuasiIdentifier],
    records: usize,
    k: u64,
    max_share: f64,
) -> Result<Anonymised, Unreachable> {
    // Per quasi-identifier and level: each record's class id at that level.
    let ids: Vec<Vec<Vec<u32>>> = qis
        .iter()
        .map(|qi| {
            qi.ladder
                .iter()
                .map(|level| {
                    let mut dictionary: HashMap<Option<String>, u32> = HashMap::new();
                    (0..records)
                        .map(|row| {
                            let value = qi.values[row].as_deref().map(|v| {
                                let canton = qi.cantons.as_ref().and_then(|c| c[row].as_deref());
                                generalise(qi.kind, level, v, canton)
                            });
                            let next = dictionary.len() as u32;
                            *dictionary.entry(value).or_insert(next)
                        })
                        .collect()
                })
                .collect()
        })
        .collect();
    let allowed = (max_share * records as f64).floor() as u64;
    let mut combos: Vec<Vec<usize>> = vec![vec![]];
    for qi in qis {
        combos = combos
            .into_iter()
            .flat_map(|c| {
                (0..qi.ladder.len().max(1)).map(move |l| {
                    let mut c = c.clone();
                    c.push(l);
                    c
                })
            })
            .collect();
    }
    combos.sort_by_key(|c| (c.iter().sum::<usize>(), c.clone()));
    let mut best_suppressed = u64::MAX;
    for combo in &combos {
        let classes = class_of(&ids, combo, records);
        let mut sizes: HashMap<&[u32], u64> = HashMap::new();
        for key in &classes {
            *sizes.entry(key.as_slice()).or_default() += 1;
        }
        let suppressed: u64 = sizes.values().filter(|&&s| s < k).sum();
        best_suppressed = best_suppressed.min(suppressed);
        if suppressed > allowed {
            continue;
        }
        let keep: Vec<bool> = classes
            .iter()
            .map(|key| sizes[key.as_slice()] >= k)
            .collect();
        let released_sizes: Vec<u64> = sizes.values().copied().filter(|&s| s >= k).collect();
        let kept = records as u64 - suppressed;
        let released: Vec<Vec<Option<String>>> = qis
            .iter()
            .zip(combo)
            .map(|(qi, &level)| {
                let level = qi.ladder.get(level).map_or("value", String::as_str);
                (0..records)
                    .map(|row| {
                        let canton = qi.cantons.as_ref().and_then(|c| c[row].as_deref());
                        qi.values[row]
                            .as_deref()
                            .map(|v| generalise(qi.kind, level, v, canton))
                    })
                    .collect()
            })
            .collect();
        // The quasi-identifiers whose chosen level is coarser than their stored precision.
        let coarsened: Vec<&QuasiIdentifier> = qis
            .iter()
            .zip(combo)
            .filter(|&(qi, &level)| {
                let rank = |name: &str| levels(qi.kind).iter().position(|l| *l == name);
                let applied = qi.ladder.get(level).map_or("value", String::as_str);
                rank(applied) > rank(qi.precision)
            })
            .map(|(qi, _)| qi)
            .collect();
        let generalised = (0..records)
            .filter(|&row| keep[row])
            .filter(|&row| coarsened.iter().any(|qi| qi.values[row].is_some()))
            .count() as u64;
        let min_class = released_sizes.iter().copied().min().unwrap_or(0);
        let threshold = 1.0 / k as f64;
        let at_risk: u64 = released_sizes
            .iter()
            .filter(|&&s| 1.0 / s as f64 > threshold)
            .sum();
        let risk = Risk {
            model: "prosecutor",
            threshold,
            records_at_risk: at_risk,
            records_at_risk_share: share(at_risk, kept),
            highest_risk: if min_class == 0 {
                0.0
            } else {
                1.0 / min_class as f64
            },
            average_risk: share(released_sizes.len() as u64, kept),
            equivalence_classes: released_sizes.len() as u64,
        };
        return Ok(Anonymised {
            levels: qis
                .iter()
                .zip(combo)
                .map(|(qi, &level)| {
                    (
                        qi.name.to_string(),
                        qi.ladder
                            .get(level)
                            .cloned()
                            .unwrap_or_else(|| "value".into()),
                    )
                })
                .collect(),
            keep,
            released,
            records_in: records as u64,
            records_suppressed: suppressed,
            records_generalised: generalised,
            k_achieved: min_class,
            risk,
        });
    }
    Err(Unreachable {
        suppressed_at_best: best_suppressed.min(records as u64),
        records: records as u64,
    })
}

fn share(part: u64, whole: u64) -> f64 {
    if whole == 0 {
        0.0
    } else {
        part as f64 / whole as f64
    }
}

fn class_of(ids: &[Vec<Vec<u32>>], combo: &[usize], records: usize) -> Vec<Vec<u32>> {
    (0..records)
        .map(|row| {
            ids.iter()
                .zip(combo)
                .map(|(levels, &level)| levels.get(level).map_or(0, |l| l[row]))
                .collect()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn qi<'a>(
        name: &'a str,
        kind: ColumnKind,
        ladder: &'a [String],
        values: &[&str],
    ) -> QuasiIdentifier<'a> {
        QuasiIdentifier {
            name,
            kind,
            ladder,
            precision: crate::spec::stored_precision(name, kind),
            values: values.iter().map(|v| Some(v.to_string())).collect(),
            cantons: None,
        }
    }

    fn ladder(levels: &[&str]) -> Vec<String> {
        levels.iter().map(|l| l.to_string()).collect()
    }

    #[test]
    fn levels_coarsen_as_named() {
        assert_eq!(
            generalise(ColumnKind::Date, "month", "2022-05-01", None),
            "2022-05"
        );
        assert_eq!(
            generalise(ColumnKind::Date, "quarter", "2022-05-01", None),
            "2022-Q2"
        );
        assert_eq!(
            generalise(ColumnKind::Date, "quarter", "2022-12-01", None),
            "2022-Q4"
        );
        assert_eq!(
            generalise(ColumnKind::Date, "year", "2022-05-01", None),
            "2022"
        );
        assert_eq!(
            generalise(ColumnKind::Commune, "canton", "Wiltz", Some("Wiltz")),
            "Wiltz"
        );
        assert_eq!(
            generalise(ColumnKind::Commune, "country", "Wiltz", None),
            "Luxembourg"
        );
        assert_eq!(generalise(ColumnKind::Plain, "*", "F", None), "*");
    }

    #[test]
    fn the_finest_levels_are_kept_when_they_already_give_k() {
        let months = ladder(&["month", "quarter", "year"]);
        let births = ["2022-01-01", "2022-01-01", "2022-02-01", "2022-02-01"];
        let out = anonymise(
            &[qi("birth_month", ColumnKind::Date, &months, &births)],
            4,
            2,
            0.0,
        )
        .unwrap();
        assert_eq!(
            out.levels,
            vec![("birth_month".to_string(), "month".to_string())]
        );
        // Birth months are stored as months: released at "month", none is generalised.
        assert_eq!(
            (
                out.records_suppressed,
                out.records_generalised,
                out.k_achieved
            ),
            (0, 0, 2)
        );
        assert_eq!(out.risk.highest_risk, 0.5);
        assert_eq!(out.risk.average_risk, 0.5);
    }

    #[test]
    fn a_coarser_level_is_taken_when_suppression_would_exceed_the_share() {
        let months = ladder(&["month", "quarter", "year"]);
        // January ×2, February ×1, April ×2: at month level, February (1 record) breaks k=2.
        let births = [
            "2022-01-01",
            "2022-01-01",
            "2022-02-01",
            "2022-04-01",
            "2022-04-01",
        ];
        // 20 % may be suppressed: month level, February suppressed.
        let out = anonymise(&[qi("b", ColumnKind::Date, &months, &births)], 5, 2, 0.2).unwrap();
        assert_eq!(out.levels[0].1, "month");
        assert_eq!(out.keep, vec![true, true, false, true, true]);
        // Nothing may be suppressed: quarters (Q1 ×3, Q2 ×2).
        let out = anonymise(&[qi("b", ColumnKind::Date, &months, &births)], 5, 2, 0.0).unwrap();
        assert_eq!(out.levels[0].1, "quarter");
        assert_eq!(out.released[0][2].as_deref(), Some("2022-Q1"));
        assert_eq!((out.k_achieved, out.risk.equivalence_classes), (2, 2));
        // k = 6 cannot be reached even at year level: refused.
        let err = anonymise(&[qi("b", ColumnKind::Date, &months, &births)], 5, 6, 0.1).unwrap_err();
        assert_eq!(
            err,
            Unreachable {
                suppressed_at_best: 5,
                records: 5
            }
        );
    }

    #[test]
    fn the_least_generalised_combination_wins() {
        let months = ladder(&["month", "year"]);
        let sexes = ladder(&["value", "*"]);
        let births = ["2022-01-01", "2022-01-01", "2022-02-01", "2022-02-01"];
        let sex = ["F", "M", "F", "M"];
        // Either coarsening alone gives k = 2; months are tried coarser first only after sex.
        let out = anonymise(
            &[
                qi("birth_month", ColumnKind::Date, &months, &births),
                qi("sex", ColumnKind::Plain, &sexes, &sex),
            ],
            4,
            2,
            0.0,
        )
        .unwrap();
        assert_eq!(out.levels[0].1, "month");
        assert_eq!(out.levels[1].1, "*");
    }

    #[test]
    fn only_records_coarsened_beyond_their_stored_precision_count_as_generalised() {
        let months = ladder(&["month", "quarter"]);
        let communes = ladder(&["commune"]);
        let births = [
            Some("2022-01-01"),
            Some("2022-02-01"),
            Some("2022-03-01"),
            None,
            None,
            Some("2022-04-01"),
        ];
        let mut birth = qi("birth_month", ColumnKind::Date, &months, &[]);
        birth.values = births.iter().map(|v| v.map(str::to_string)).collect();
        let place = qi("commune", ColumnKind::Commune, &communes, &["Wiltz"; 6]);
        // k = 2, at most 1 of 6 suppressed. Months: Jan, Feb, Mar, Apr alone (4 suppressed),
        // too many. Quarters: Q1 x3, null x2, Q2 x1: April suppressed.
        let out = anonymise(&[birth, place], 6, 2, 0.2).unwrap();
        assert_eq!(out.levels[0].1, "quarter");
        assert_eq!(out.levels[1].1, "commune");
        assert_eq!(out.keep, vec![true, true, true, true, true, false]);
        // By hand: the three Q1 records had their month coarsened to a quarter; the two
        // null birth months stay null, the communes stay communes (their stored level).
        assert_eq!((out.records_suppressed, out.records_generalised), (1, 3));
        // A date stored as a day and released as a month is coarsened.
        let days = ladder(&["month"]);
        let out = anonymise(
            &[qi(
                "administered_on",
                ColumnKind::Date,
                &days,
                &["2022-01-05", "2022-01-09"],
            )],
            2,
            2,
            0.0,
        )
        .unwrap();
        assert_eq!(out.records_generalised, 2);
    }
}
