//! The manifest's account of the planted communes: the pockets of low coverage and the
//! tiny commune, counted from the persons written to population.csv.

use crate::manifest::{CommunesManifest, PocketCommune, TinyCommune};
use crate::people::{Kind, Person};
use crate::reference::Geo;
use crate::schedule::{self, CommuneFx};

/// Four decimals are enough to read and compare a share.
fn share(x: f64) -> f64 {
    (x * 10_000.0).round() / 10_000.0
}

pub fn manifest(geo: &Geo, fx: &[CommuneFx], persons: &[Person]) -> CommunesManifest {
    // Residents on 1 January 2026, as population.csv counts them: total and born 2016–2025.
    let mut residents = vec![0u64; geo.communes.len()];
    let mut recent = vec![0u64; geo.communes.len()];
    for p in persons {
        if p.kind == Kind::Resident && p.deceased.is_none() {
            residents[p.commune as usize] += 1;
            if crate::date::year(p.birth) >= 2016 {
                recent[p.commune as usize] += 1;
            }
        }
    }
    let name = |i: usize| geo.communes[i].name.to_string();
    let canton = |i: usize| geo.cantons[geo.communes[i].canton].to_string();
    let pockets = (0..fx.len())
        .filter(|&i| fx[i].pocket)
        .map(|i| PocketCommune {
            name: name(i),
            canton: canton(i),
            refusal: share(fx[i].refusal),
            coverage_factor: share(1.0 - fx[i].refusal),
            residents: residents[i],
        })
        .collect();
    let ordinary = fx.iter().filter(|f| !f.pocket).map(|f| f.refusal);
    let lowest = ordinary.clone().fold(f64::INFINITY, f64::min);
    let highest = ordinary.fold(0.0, f64::max);
    let t = &geo.tiny;
    let with_residents: Vec<String> = (0..geo.communes.len())
        .filter(|&i| geo.communes[i].canton == t.canton && residents[i] > 0)
        .map(name)
        .collect();
    CommunesManifest {
        national_refusal: share(schedule::weighted_refusal(geo, fx)),
        ordinary_refusal: [share(lowest), share(highest)],
        pockets,
        tiny: TinyCommune {
            name: name(t.tiny),
            canton: canton(t.tiny),
            residents: residents[t.tiny],
            births_per_year: recent[t.tiny] as f64 / 10.0,
            partner: name(t.partner),
            canton_communes_with_residents: with_residents,
            communes_without_residents: t.empty.iter().map(|&i| name(i)).collect(),
        },
    }
}
