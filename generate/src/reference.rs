//! Reference data: the vaccines the generator uses (display names read from
//! `sql/reference/vaccines.csv`), communes and cantons (from `vaxlake_pseudonymize::COMMUNES`),
//! postal codes, names, streets, free-text notes and practitioners.

use crate::rng::{RngExt, Weighted};
use std::sync::LazyLock;

/// `sql/reference/vaccines.csv` (as the catalogue parsed it) as (ATC code, vaccine name)
/// pairs.
pub static VACCINE_TABLE: LazyLock<Vec<(String, String)>> = LazyLock::new(|| {
    vaxlake_catalog::builtin()
        .unwrap_or_else(|error| panic!("{error}"))
        .vaccines
        .iter()
        .map(|v| (v.atc_code.clone(), v.name.clone()))
        .collect()
});

/// Whether an ATC code is in the reference file (valid records use only these).
#[cfg(test)]
pub fn is_known_atc(code: &str) -> bool {
    VACCINE_TABLE.iter().any(|(c, _)| c == code)
}

/// ATC codes planted as "unknown vaccine" (none is in the reference file).
pub const UNKNOWN_ATC: [&str; 3] = ["J07ZZ99", "J07BX99", "J07AX01"];

/// The vaccines the synthetic registry records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[repr(u8)]
pub enum Vax {
    Hexa,
    DtapIpv,
    Dtap,
    Td,
    Pcv,
    Ppsv,
    Rota1,
    Rota5,
    MenB,
    Mmr,
    Mmrv,
    MenC,
    MenAcwy,
    Hpv9,
    FluSplit,
    FluLaiv,
    ZosterLive,
    ZosterRec,
    Rsv,
    CovMrna,
    CovVector,
    CovProtein,
}

impl Vax {
    pub const ALL: [Vax; 22] = [
        Vax::Hexa,
        Vax::DtapIpv,
        Vax::Dtap,
        Vax::Td,
        Vax::Pcv,
        Vax::Ppsv,
        Vax::Rota1,
        Vax::Rota5,
        Vax::MenB,
        Vax::Mmr,
        Vax::Mmrv,
        Vax::MenC,
        Vax::MenAcwy,
        Vax::Hpv9,
        Vax::FluSplit,
        Vax::FluLaiv,
        Vax::ZosterLive,
        Vax::ZosterRec,
        Vax::Rsv,
        Vax::CovMrna,
        Vax::CovVector,
        Vax::CovProtein,
    ];

    pub fn atc(self) -> &'static str {
        match self {
            Vax::Hexa => "J07CA09",
            Vax::DtapIpv => "J07CA02",
            Vax::Dtap => "J07AJ52",
            Vax::Td => "J07AM51",
            Vax::Pcv => "J07AL02",
            Vax::Ppsv => "J07AL01",
            Vax::Rota1 => "J07BH01",
            Vax::Rota5 => "J07BH02",
            Vax::MenB => "J07AH09",
            Vax::Mmr => "J07BD52",
            Vax::Mmrv => "J07BD54",
            Vax::MenC => "J07AH07",
            Vax::MenAcwy => "J07AH08",
            Vax::Hpv9 => "J07BM03",
            Vax::FluSplit => "J07BB02",
            Vax::FluLaiv => "J07BB03",
            Vax::ZosterLive => "J07BK02",
            Vax::ZosterRec => "J07BK03",
            Vax::Rsv => "J07BX05",
            Vax::CovMrna => "J07BN01",
            Vax::CovVector => "J07BN02",
            Vax::CovProtein => "J07BN04",
        }
    }

    /// The name a registry shows: the product for rotavirus (its series length follows the
    /// product, sql/reference/vaccine_series.csv), else the name in `vaccines.csv`.
    pub fn display(self) -> &'static str {
        match self {
            Vax::Rota1 => return "Rotarix",
            Vax::Rota5 => return "RotaTeq",
            _ => {}
        }
        static NAMES: LazyLock<Vec<&'static str>> = LazyLock::new(|| {
            Vax::ALL
                .iter()
                .map(|v| {
                    VACCINE_TABLE
                        .iter()
                        .find(|(c, _)| c == v.atc())
                        .map(|(_, n)| n.as_str())
                        .unwrap_or_else(|| {
                            panic!("{} missing from sql/reference/vaccines.csv", v.atc())
                        })
                })
                .collect()
        });
        NAMES[self as usize]
    }

    pub fn is_flu(self) -> bool {
        matches!(self, Vax::FluSplit | Vax::FluLaiv)
    }

    pub fn has_measles(self) -> bool {
        matches!(self, Vax::Mmr | Vax::Mmrv)
    }

    /// Two capital letters that start this vaccine's lot numbers.
    fn lot_prefix(self) -> [u8; 2] {
        let a = self.atc().as_bytes();
        [
            b'A' + (a[4] - b'A') % 26,
            b'A' + (a[5] + a[6] + self as u8) % 26,
        ]
    }
}

/// COVID-19 products as the COVID system names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Product {
    Comirnaty,
    Spikevax,
    Vaxzevria,
    Jcovden,
    Nuvaxovid,
}

impl Product {
    pub fn vax(self) -> Vax {
        match self {
            Product::Comirnaty | Product::Spikevax => Vax::CovMrna,
            Product::Vaxzevria | Product::Jcovden => Vax::CovVector,
            Product::Nuvaxovid => Vax::CovProtein,
        }
    }
    pub fn name(self) -> &'static str {
        match self {
            Product::Comirnaty => "Comirnaty",
            Product::Spikevax => "Spikevax",
            Product::Vaxzevria => "Vaxzevria",
            Product::Jcovden => "Jcovden",
            Product::Nuvaxovid => "Nuvaxovid",
        }
    }
}

/// A lot number: a few lots per vaccine and calendar month, shared by many doses, as in a
/// real supply chain. Encoded as a number, written as two letters and four digits.
pub fn lot_code(seed: u64, vax: Vax, day: i32, which: u64) -> u32 {
    let month = day.div_euclid(30) as u64;
    let h = crate::rng::hash(&[seed, 0x10_7000 + vax as u64, month, which]);
    let prefix = vax.lot_prefix();
    (u32::from(prefix[0] - b'A') * 26 + u32::from(prefix[1] - b'A')) * 10_000 + (h % 10_000) as u32
}

pub fn push_lot(buf: &mut Vec<u8>, code: u32) {
    let letters = code / 10_000;
    buf.push(b'A' + (letters / 26 % 26) as u8);
    buf.push(b'A' + (letters % 26) as u8);
    crate::text::push_padded(buf, u64::from(code % 10_000), 4);
}

/// Why a dose was not given (`statusReason`, HL7 v3 ActReason).
pub const NOT_DONE_REASONS: [(&str, &str); 4] = [
    ("PATOBJ", "patient objection"),
    ("MEDPREC", "medical precaution"),
    ("OSTOCK", "product out of stock"),
    ("IMMUNE", "immunity"),
];
pub const PATOBJ: u8 = 1;
pub const MEDPREC: u8 = 2;
pub const OSTOCK: u8 = 3;
pub const IMMUNE: u8 = 4;

/// Communes with their canton index and postal-code range.
pub struct Geo {
    pub communes: Vec<CommuneInfo>,
    pub cantons: Vec<&'static str>,
    /// Draws a resident's commune by `CommuneInfo::weight`.
    pub weights: Weighted,
    pub tiny: TinyCanton,
}

pub struct CommuneInfo {
    pub name: &'static str,
    pub canton: usize,
    /// The population the reference list gives.
    pub population: u32,
    /// The synthetic population's share of residents (relative): `population`, except in the
    /// canton of the tiny commune (see `TinyCanton`).
    pub weight: f64,
    pub postal_lo: u16,
    pub postal_hi: u16,
}

/// Residents (at 670,000 persons) planted in the tiny commune: about three births a year
/// (residents of age 0 are 0.95 % of the pyramid), so that its cohort cells fall under the
/// suppression threshold of 8 almost every year.
pub const TINY_COMMUNE_RESIDENTS: f64 = 300.0;

/// A canton with exactly two communes that have residents, one of them tiny: the case where
/// publishing the canton and the larger commune would reveal the tiny commune's suppressed
/// cell by subtraction, unless disclosure control suppresses a complement.
///
/// No canton of Luxembourg has two communes (the smallest, Vianden, has three), and the
/// generator must not invent communes nor alter sql/reference/communes.csv. So the synthetic
/// population, not the reference list, makes the case: in the canton with the fewest
/// communes (Vianden), the smallest commune (Putscheid) gets `TINY_COMMUNE_RESIDENTS`
/// instead of its reference population, the canton's seat (Vianden; else the largest commune)
/// keeps its own, and the others (Tandel) get no synthetic resident at all. They stay valid communes: a record naming them
/// is resident, only the synthetic registry has nobody there.
pub struct TinyCanton {
    pub canton: usize,
    /// The tiny commune (index into `Geo::communes`).
    pub tiny: usize,
    /// The canton's other commune with residents.
    pub partner: usize,
    /// The canton's communes left without synthetic residents.
    pub empty: Vec<usize>,
}

impl TinyCanton {
    fn choose(communes: &[CommuneInfo], cantons_names: &[&str]) -> TinyCanton {
        let cantons = cantons_names.len();
        let members = |k: usize| -> Vec<usize> {
            (0..communes.len())
                .filter(|&i| communes[i].canton == k)
                .collect()
        };
        let canton_population = |k: usize| -> u64 {
            members(k)
                .iter()
                .map(|&i| u64::from(communes[i].population))
                .sum()
        };
        let canton = (0..cantons)
            .filter(|&k| members(k).len() >= 2)
            .min_by_key(|&k| (members(k).len(), canton_population(k), k))
            .expect("the reference list has a canton of two communes or more");
        let mut by_size = members(canton);
        by_size.sort_by_key(|&i| (communes[i].population, i));
        let tiny = by_size[0];
        // The canton's seat (the commune that gives the canton its name), else its largest.
        let partner = by_size
            .iter()
            .copied()
            .find(|&i| i != tiny && communes[i].name == cantons_names[canton])
            .unwrap_or(by_size[by_size.len() - 1]);
        let empty = by_size
            .iter()
            .copied()
            .filter(|&i| i != tiny && i != partner)
            .collect();
        TinyCanton {
            canton,
            tiny,
            partner,
            empty,
        }
    }
}

/// Postal-code ranges of each canton (Luxembourg codes are regional: L-1xxx/2xxx the city,
/// 3xxx/4xxx the south, 9xxx the north).
fn canton_postal_range(canton: &str) -> (u16, u16) {
    match canton {
        "Luxembourg" => (1009, 2999),
        "Esch-sur-Alzette" => (3201, 4999),
        "Capellen" => (8050, 8399),
        "Remich" => (5401, 5699),
        "Grevenmacher" => (6701, 6990),
        "Echternach" => (6401, 6690),
        "Mersch" => (7401, 7790),
        "Redange" => (8501, 8899),
        "Diekirch" => (9001, 9399),
        "Vianden" => (9401, 9499),
        "Wiltz" => (9501, 9690),
        "Clervaux" => (9701, 9990),
        _ => (1000, 9999),
    }
}

impl Geo {
    pub fn new() -> Geo {
        let list = &*vaxlake_pseudonymize::COMMUNES;
        let mut cantons: Vec<&'static str> = Vec::new();
        for c in list {
            if !cantons.contains(&c.canton) {
                cantons.push(c.canton);
            }
        }
        let mut communes = Vec::with_capacity(list.len());
        for c in list {
            let in_canton: Vec<&str> = list
                .iter()
                .filter(|o| o.canton == c.canton)
                .map(|o| o.name)
                .collect();
            let k = in_canton.iter().position(|n| *n == c.name).unwrap_or(0) as u32;
            let (lo, hi) = canton_postal_range(c.canton);
            let width = (u32::from(hi - lo) / in_canton.len().max(1) as u32).max(1);
            let postal_lo = (u32::from(lo) + k * width) as u16;
            communes.push(CommuneInfo {
                name: c.name,
                canton: cantons.iter().position(|n| *n == c.canton).unwrap_or(0),
                population: c.population,
                weight: f64::from(c.population.max(1)),
                postal_lo,
                postal_hi: (u32::from(postal_lo) + width - 1) as u16,
            });
        }
        let tiny = TinyCanton::choose(&communes, &cantons);
        communes[tiny.tiny].weight = TINY_COMMUNE_RESIDENTS;
        for &i in &tiny.empty {
            communes[i].weight = 0.0;
        }
        let weights = Weighted::new(communes.iter().map(|c| c.weight));
        Geo {
            communes,
            cantons,
            weights,
            tiny,
        }
    }
}

/// A few hundred practitioners, each practising in one canton (drawn by canton population).
pub struct Practitioners {
    pub canton: Vec<usize>,
    pub by_canton: Vec<Vec<u16>>,
}

pub const PRACTITIONERS: usize = 320;

impl Practitioners {
    pub fn new(geo: &Geo, rng: &mut impl RngExt) -> Practitioners {
        let mut pops = vec![0.0; geo.cantons.len()];
        for c in &geo.communes {
            pops[c.canton] += f64::from(c.population);
        }
        let w = Weighted::new(pops.iter().copied());
        let mut canton = Vec::with_capacity(PRACTITIONERS);
        let mut by_canton = vec![Vec::new(); geo.cantons.len()];
        for i in 0..PRACTITIONERS {
            // Every canton has at least one practitioner.
            let c = if i < geo.cantons.len() {
                i
            } else {
                w.sample(rng)
            };
            canton.push(c);
            by_canton[c].push(i as u16 + 1);
        }
        Practitioners { canton, by_canton }
    }

    /// A practitioner of the canton most of the time, anyone otherwise.
    pub fn pick(&self, canton: usize, rng: &mut impl RngExt) -> u16 {
        let local = &self.by_canton[canton];
        if !local.is_empty() && rng.chance(0.85) {
            *rng.pick(local)
        } else {
            rng.below(self.canton.len() as u64) as u16 + 1
        }
    }
}

#[rustfmt::skip]
pub const FAMILY_NAMES: &[&str] = &[
    "Schmit", "Muller", "Weber", "Wagner", "Hoffmann", "Thill", "Schmitz", "Kremer", "Klein",
    "Reuter", "Becker", "Schroeder", "Kieffer", "Meyer", "Welter", "Majerus", "Hansen", "Schiltz",
    "Steffen", "Weis", "Kayser", "Goergen", "Wirtz", "Faber", "Marx", "Lentz", "Hilbert", "Jacoby",
    "Ries", "Feltgen", "Gengler", "Wolff", "Bintner", "Differding", "Frisch", "Heinen", "Kohn",
    "Lanners", "Molitor", "Nilles", "Pletschette", "Rausch", "Scholtes", "Theis", "Urbany",
    "Wampach", "Zeimet", "Bettendorff", "Clement", "Dostert", "Ernster", "Fischbach", "Gloden",
    "Hengen", "Juncker", "Kinn", "Loos", "Mangen", "Neu", "Olinger", "Da Silva", "Pereira",
    "Ferreira", "Dos Santos", "Rodrigues", "Gonçalves", "Fernandes", "Martins", "Lopes", "Alves",
    "Costa", "Teixeira", "Oliveira", "Sousa", "Carvalho", "Ribeiro", "Pinto", "Mendes", "Gomes",
    "Marques", "Dupont", "Martin", "Bernard", "Dubois", "Lambert", "Lefèvre", "Mercier", "Girard",
    "François", "Laurent", "Rossi", "Russo", "Bianchi", "Romano", "Colombo", "D'Amico", "Esposito",
    "Ricci", "Marino", "Greco", "Schneider", "Fischer", "Schäfer", "Koch", "Bauer", "Richter",
    "Zimmermann", "Krüger", "Hartmann", "Lange", "Peeters", "Janssens", "Maes", "Jacobs", "Mertens",
    "Nowak", "Kowalski", "Murphy", "Smith", "Hadžić",
];

#[rustfmt::skip]
pub const FEMALE_GIVEN_RECENT: &[&str] = &[
    "Emma", "Mia", "Léa", "Sofia", "Lara", "Anna", "Lina", "Zoé", "Chloé", "Olivia", "Charlotte",
    "Alice", "Lena", "Eva", "Louise", "Maria", "Beatriz", "Inês", "Giulia", "Sarah", "Laura",
    "Julie", "Lisa", "Nina", "Amélie", "Clara", "Leonor", "Matilde", "Ella", "Noémie",
];
#[rustfmt::skip]
pub const FEMALE_GIVEN_OLDER: &[&str] = &[
    "Marie", "Anne", "Monique", "Josée", "Nicole", "Claudine", "Françoise", "Jeanne", "Marguerite",
    "Nathalie", "Sandra", "Carole", "Martine", "Christiane", "Sylvie", "Paula", "Maria", "Fernanda",
    "Rosa", "Anna", "Marie-Paule", "Marie-Josée", "Lucie", "Danielle", "Mireille", "Isabelle",
    "Gaby", "Renée", "Liliane", "Conceição",
];
#[rustfmt::skip]
pub const MALE_GIVEN_RECENT: &[&str] = &[
    "Noah", "Gabriel", "Leo", "Luca", "Liam", "Tom", "Ben", "Max", "Louis", "Théo", "Mathis",
    "David", "Tiago", "Rafael", "Lorenzo", "Matteo", "Paul", "Elias", "Nathan", "Lucas", "Samuel",
    "Adam", "Enzo", "Felix", "Jules", "Santiago", "Duarte", "Finn", "Nicolas", "Hugo",
];
#[rustfmt::skip]
pub const MALE_GIVEN_OLDER: &[&str] = &[
    "Jean", "Marc", "Paul", "Luc", "Claude", "Pierre", "Fernand", "Romain", "Jos", "Nico", "Yves",
    "Patrick", "Michel", "Guy", "Gilles", "Jeannot", "Raymond", "Roger", "Carlo", "Manuel", "José",
    "António", "João", "Francesco", "Giuseppe", "René", "Serge", "Thierry", "Frank", "Jean-Paul",
];

#[rustfmt::skip]
pub const STREETS: &[&str] = &[
    "rue de la Gare", "route d'Arlon", "avenue de la Liberté", "rue Principale", "rue de l'Église",
    "rue des Champs", "rue du Moulin", "rue de Luxembourg", "route de Longwy", "rue des Jardins",
    "avenue Gaston Diderich", "rue du Cimetière", "rue de la Montagne", "route de Thionville",
    "rue de Hollerich", "rue du Château", "rue de la Forêt", "rue des Prés", "rue du Village",
    "rue Neuve", "avenue Pasteur", "rue Michel Rodange", "rue Dicks", "route d'Esch",
    "rue de Mersch", "rue du Parc", "rue de la Chapelle", "rue Grande-Duchesse Charlotte",
    "avenue de la Gare", "route de Diekirch", "rue de l'Alzette", "rue de la Sûre",
    "rue des Vignes", "rue de la Moselle", "route de Luxembourg", "rue des Écoles",
    "rue Pierre Dupong", "avenue de la Faïencerie", "rue Émile Mayrisch", "route de Trèves",
];

/// Free-text notes (dropped at ingest). Some name people or carry a phone number, so that a
/// leak test finds them if they are not dropped. `{m}` = a mother's name, `{p}` = a phone.
pub const NOTES: &[&str] = &[
    "Bien toléré.",
    "Légère fièvre le soir, paracétamol conseillé.",
    "Rougeur au point d'injection, disparue après 2 jours.",
    "Accompagné(e) de sa mère {m}.",
    "Rappel prévu dans 1 mois — tél. {p}.",
    "Vaccin apporté par le patient (pharmacie).",
    "Patient dit: \"pas d'allergie connue\".",
    "Nachholimpfung, Impfpass kontrolléiert.",
    "Catch-up dose after arrival from abroad; paper record seen.",
    "Mère ({m}) signale une réaction locale lors de la dose précédente.",
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_codes_are_in_the_reference_file_and_planted_ones_are_not() {
        for v in Vax::ALL {
            assert!(is_known_atc(v.atc()), "{v:?}");
            assert!(!v.display().is_empty());
        }
        for code in UNKNOWN_ATC
            .into_iter()
            .chain([crate::covid::UNKNOWN_COVID_ATC])
        {
            assert!(!is_known_atc(code), "{code} is in vaccines.csv");
        }
        assert_eq!(Vax::Hexa.display(), "DTaP-IPV-Hib-HepB (hexavalent)");
    }

    #[test]
    fn postal_codes_stay_in_their_canton_range() {
        let geo = Geo::new();
        assert_eq!(geo.cantons.len(), 12);
        for c in &geo.communes {
            let (lo, hi) = canton_postal_range(geo.cantons[c.canton]);
            assert!(
                c.postal_lo >= lo && c.postal_hi <= hi && c.postal_lo <= c.postal_hi,
                "{}",
                c.name
            );
        }
    }

    #[test]
    fn the_smallest_canton_has_two_communes_with_residents_one_tiny() {
        let geo = Geo::new();
        let t = &geo.tiny;
        assert_eq!(geo.cantons[t.canton], "Vianden");
        assert_eq!(geo.communes[t.tiny].name, "Putscheid");
        assert_eq!(geo.communes[t.partner].name, "Vianden");
        let empty: Vec<&str> = t.empty.iter().map(|&i| geo.communes[i].name).collect();
        assert_eq!(empty, ["Tandel"]);
        let populated: Vec<&str> = geo
            .communes
            .iter()
            .filter(|c| c.canton == t.canton && c.weight > 0.0)
            .map(|c| c.name)
            .collect();
        assert_eq!(populated.len(), 2, "{populated:?}");
        // Births a year at 670,000 persons: the tiny commune's share of residents times the
        // 6,300 residents of age 0 (people::PYRAMID) — about 3, always under 8 on average.
        let total: f64 = geo.communes.iter().map(|c| c.weight).sum();
        let births = 6300.0 * geo.communes[t.tiny].weight / total;
        assert!((2.0..5.0).contains(&births), "{births}");
        let partner_births = 6300.0 * geo.communes[t.partner].weight / total;
        assert!(partner_births > 15.0, "{partner_births}");
        // Sampling never lands on an empty commune.
        let mut rng = crate::rng::stream(1, 99);
        for _ in 0..20_000 {
            assert!(!t.empty.contains(&geo.weights.sample(&mut rng)));
        }
    }

    #[test]
    fn lots_look_like_lots() {
        let mut b = Vec::new();
        push_lot(&mut b, lot_code(1, Vax::Mmr, 19_000, 2));
        assert_eq!(b.len(), 6);
        assert!(b[..2].iter().all(u8::is_ascii_uppercase) && b[2..].iter().all(u8::is_ascii_digit));
    }
}
