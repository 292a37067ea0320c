//! The COVID-19 vaccination system's export (`registry.csv`): primary series from 2021 by age
//! priority, boosters from late 2021, autumn doses for 60+, a few corrections and
//! entered-in-error rows, and planted bad rows. About one person in ten also has their doses
//! imported into the FHIR registry (the COVID copies).

use crate::date::{self, add_years, age_years, local_ts, ymd, Day, Ts};
use crate::manifest::CsvManifest;
use crate::people::{corrupt_check_digit, Person};
use crate::reference::{lot_code, push_lot, Geo, Product};
use crate::rng::{self, RngExt};
use crate::text::{push_csv_field, push_padded, push_uint};
use crate::{par, EXPORT_END, PERSON_CHUNK};
use std::io::Write;

pub const UNKNOWN_COVID_ATC: &str = "J07BN99";

#[derive(Debug, Clone, Copy)]
pub struct CovidDose {
    pub person: u32,
    pub date: Day,
    pub rec: Ts,
    pub lot: u32,
    pub vaccinator: u16,
    pub product: Product,
    pub dose_no: u8,
}

/// A COVID dose that the FHIR registry also holds.
#[derive(Debug, Clone, Copy)]
pub struct Copy {
    pub event_no: u32,
    pub dose: CovidDose,
    /// When the registry imported it (the copy's meta.lastUpdated).
    pub imported: Ts,
}

struct Series<'a, R: RngExt> {
    person: u32,
    seed: u64,
    rng: &'a mut R,
    out: &'a mut Vec<CovidDose>,
    n: u8,
}

impl<R: RngExt> Series<'_, R> {
    fn give(&mut self, product: Product, date: Day) -> Day {
        self.n += 1;
        let vaccinator = if date < ymd(2021, 7, 1) && self.rng.chance(0.85) {
            self.rng.between(1, 12)
        } else {
            self.rng.between(13, 160)
        } as u16;
        let rec_day = if self.rng.chance(0.95) {
            date
        } else {
            date + self.rng.between(1, 3)
        };
        let rec = local_ts(rec_day, i64::from(self.rng.between(8 * 60, 19 * 60)));
        let lot = lot_code(
            self.seed,
            product.vax(),
            date,
            product as u64 * 8 + self.rng.below(4),
        );
        self.out.push(CovidDose {
            person: self.person,
            date,
            rec,
            lot,
            vaccinator,
            product,
            dose_no: self.n,
        });
        date
    }

    fn booster_product(&mut self) -> Product {
        let u = self.rng.unit();
        if u < 0.80 {
            Product::Comirnaty
        } else if u < 0.97 {
            Product::Spikevax
        } else {
            Product::Nuvaxovid
        }
    }
}

fn person_doses<R: RngExt>(
    p: &Person,
    person: u32,
    seed: u64,
    rng: &mut R,
    out: &mut Vec<CovidDose>,
) {
    let b = p.birth;
    let a21 = age_years(b, ymd(2021, 1, 1));
    let d = |m: u32, day: u32| ymd(2021, m, day);
    let (uptake, lo, hi, child) = match a21 {
        80.. => (0.93, d(1, 4), d(3, 15), false),
        70..=79 => (0.92, d(2, 15), d(4, 15), false),
        60..=69 => (0.89, d(3, 15), d(5, 15), false),
        50..=59 => (0.85, d(4, 15), d(6, 15), false),
        40..=49 => (0.80, d(5, 10), d(7, 10), false),
        30..=39 => (0.74, d(6, 1), d(8, 15), false),
        18..=29 => (0.72, d(6, 1), d(8, 15), false),
        _ if age_years(b, d(7, 1)) >= 12 => (0.60, d(7, 15), d(10, 15), true),
        _ if age_years(b, ymd(2022, 1, 1)) >= 5 => (0.12, ymd(2022, 1, 3), ymd(2022, 4, 30), true),
        _ => return,
    };
    if !rng.chance(uptake) {
        return;
    }
    let adult = !child;
    let first = if rng.chance(0.12) {
        rng.between(hi, ymd(2022, 6, 30))
    } else {
        rng.between(lo, hi)
    };
    let mut s = Series {
        person,
        seed,
        rng,
        out,
        n: 0,
    };
    let u = s.rng.unit();
    let product = if adult && a21 >= 55 && first < ymd(2021, 6, 30) && u < 0.10 {
        Product::Vaxzevria
    } else if adult && (ymd(2021, 4, 15)..ymd(2021, 11, 1)).contains(&first) && u < 0.03 {
        Product::Jcovden
    } else if adult && first >= ymd(2022, 2, 1) && u < 0.2 {
        Product::Nuvaxovid
    } else if adult && s.rng.chance(0.2) {
        Product::Spikevax
    } else {
        Product::Comirnaty
    };
    let mut last = s.give(product, first);
    if product != Product::Jcovden {
        if !s.rng.chance(0.96) {
            return;
        }
        let gap = match product {
            Product::Vaxzevria => s.rng.between(56, 84),
            Product::Nuvaxovid => s.rng.between(21, 28),
            _ => s.rng.between(21, 42),
        };
        last = s.give(product, first + gap);
    }

    // First booster from late 2021.
    let (p_boost, campaign) = if child {
        if a21 >= 11 {
            (0.30, ymd(2022, 1, 15))
        } else {
            (0.03, ymd(2022, 6, 1))
        }
    } else if a21 >= 60 {
        (0.85, d(11, 15))
    } else {
        (0.68, d(12, 1))
    };
    if !s.rng.chance(p_boost) {
        return;
    }
    let earliest = last + 150 + s.rng.between(0, 60);
    let product = s.booster_product();
    let date = earliest.max(campaign) + s.rng.between(0, 60);
    last = s.give(product, date);

    // Autumn doses: mostly 60+.
    for (year, p_old, p_young) in [(2022, 0.55, 0.07), (2023, 0.40, 0.04), (2024, 0.30, 0.03)] {
        let age = age_years(b, ymd(year, 9, 1));
        let p = if age >= 60 {
            p_old
        } else if age >= 18 {
            p_young
        } else {
            0.0
        };
        if !s.rng.chance(p) {
            continue;
        }
        let date = (ymd(year, 9, 20) + s.rng.between(0, 86)).max(last + 120);
        if date > ymd(year, 12, 31) {
            continue;
        }
        let product = s.booster_product();
        last = s.give(product, date);
    }
}

/// All COVID doses, in administration order.
pub fn generate_doses(persons: &[Person], seed: u64) -> Vec<CovidDose> {
    let chunks = persons.len().div_ceil(PERSON_CHUNK);
    let parts = par::map(chunks, |c| {
        let mut rng = rng::stream(seed, rng::ids::COVID_CHUNK + c as u64);
        let mut out = Vec::new();
        let end = ((c + 1) * PERSON_CHUNK).min(persons.len());
        for (i, p) in persons.iter().enumerate().take(end).skip(c * PERSON_CHUNK) {
            if p.in_registry() && p.at_risk() {
                person_doses(p, i as u32, seed, &mut rng, &mut out);
            }
        }
        out
    });
    let mut all: Vec<CovidDose> = parts.into_iter().flatten().collect();
    // Nothing is recorded after a death.
    all.retain(|d| persons[d.person as usize].alive_on(d.date));
    all.sort_by_key(|d| (d.date, d.rec, d.person, d.dose_no));
    all
}

enum Administered<'a> {
    Date(Day),
    Text(&'a str),
}

struct Row<'a> {
    event_no: u32,
    nid: &'a [u8],
    person: &'a Person,
    atc: &'a str,
    name: &'a str,
    lot: u32,
    dose_no: u8,
    administered: Administered<'a>,
    vaccinator: u16,
    status: &'a str,
    rec: Ts,
    /// -1: drop the lot field, +1: an extra field, 0: as it should be.
    field_error: i8,
}

fn push_row(buf: &mut Vec<u8>, geo: &Geo, r: &Row) {
    buf.extend_from_slice(b"CV-");
    push_padded(buf, u64::from(r.event_no), 7);
    buf.push(b',');
    buf.extend_from_slice(r.nid);
    buf.push(b',');
    date::push_date(buf, r.person.birth);
    buf.push(b',');
    buf.extend_from_slice(r.person.sex.as_str().as_bytes());
    buf.push(b',');
    // A cross-border worker's row names the town abroad, as the vaccinating centre typed it.
    match r.person.abroad() {
        Some((city, _)) => push_csv_field(buf, city),
        None => push_csv_field(buf, geo.communes[r.person.commune as usize].name),
    }
    buf.push(b',');
    buf.extend_from_slice(r.atc.as_bytes());
    buf.push(b',');
    push_csv_field(buf, r.name);
    if r.field_error >= 0 {
        buf.push(b',');
        push_lot(buf, r.lot);
    }
    buf.push(b',');
    push_uint(buf, u64::from(r.dose_no));
    buf.push(b',');
    match r.administered {
        Administered::Date(d) => date::push_date(buf, d),
        Administered::Text(t) => buf.extend_from_slice(t.as_bytes()),
    }
    buf.extend_from_slice(b",VAC-");
    push_padded(buf, u64::from(r.vaccinator), 4);
    buf.push(b',');
    buf.extend_from_slice(r.status.as_bytes());
    buf.push(b',');
    date::push_local(buf, r.rec);
    if r.field_error > 0 {
        buf.extend_from_slice(b",checked");
    }
    buf.push(b'\n');
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum BadRow {
    InvalidCheckDigit,
    UnknownAtc,
    DoseBeforeBirth,
    BadDate,
    BadFieldCount,
}

const BAD_ROWS: [BadRow; 5] = [
    BadRow::InvalidCheckDigit,
    BadRow::UnknownAtc,
    BadRow::DoseBeforeBirth,
    BadRow::BadDate,
    BadRow::BadFieldCount,
];

fn bad_date_text(d: Day, variant: u64) -> String {
    let (y, m, day) = date::civil(d);
    match variant % 3 {
        0 => format!("{y:04}-02-{}", 30 + (day % 2)),
        1 => format!("{day:02}/{m:02}/{y:04}"),
        _ => format!("{y:04}-13-{day:02}"),
    }
}

struct BadCtx<'a> {
    persons: &'a [Person],
    geo: &'a Geo,
    /// Registry persons born after the first COVID doses (hosts of doses before birth).
    young: Vec<u32>,
}

/// A planted bad row derived from dose `d`, with its own event id.
fn bad_row(
    ctx: &BadCtx,
    m: &mut CsvManifest,
    kind: BadRow,
    d: &CovidDose,
    rng: &mut rand_chacha::ChaCha8Rng,
    buf: &mut Vec<u8>,
    no: u32,
) {
    let mut person = &ctx.persons[d.person as usize];
    let corrupted;
    let mut nid: &[u8] = &person.nid;
    let mut atc = d.product.vax().atc();
    let mut name = d.product.name();
    let mut administered = Administered::Date(d.date);
    let text;
    let mut field_error = 0;
    match kind {
        BadRow::InvalidCheckDigit => {
            corrupted = corrupt_check_digit(&person.nid, u64::from(no));
            nid = &corrupted;
            m.bad.invalid_check_digit += 1;
        }
        BadRow::UnknownAtc => {
            atc = UNKNOWN_COVID_ATC;
            name = "COVID-19 vaccine (unlisted)";
            m.bad.unknown_atc += 1;
        }
        BadRow::DoseBeforeBirth => {
            let first = ymd(2021, 1, 4);
            if !ctx.young.is_empty() {
                person = &ctx.persons[*rng.pick(&ctx.young) as usize];
                nid = &person.nid;
            }
            let day = if person.birth > first {
                rng.between(first, person.birth - 1)
            } else {
                person.birth - rng.between(1, 300)
            };
            administered = Administered::Date(day);
            m.bad.dose_before_birth += 1;
        }
        BadRow::BadDate => {
            text = bad_date_text(d.date, rng.below(3));
            administered = Administered::Text(&text);
            m.bad.bad_date += 1;
        }
        BadRow::BadFieldCount => {
            field_error = if rng.chance(0.5) { -1 } else { 1 };
            m.bad.bad_field_count += 1;
        }
    }
    push_row(
        buf,
        ctx.geo,
        &Row {
            event_no: no,
            nid,
            person,
            atc,
            name,
            lot: d.lot,
            dose_no: d.dose_no,
            administered,
            vaccinator: d.vaccinator,
            status: "completed",
            rec: d.rec,
            field_error,
        },
    );
    m.rows += 1;
}

pub struct CsvOutcome {
    pub manifest: CsvManifest,
    /// Sorted by person, then date.
    pub copies: Vec<Copy>,
}

/// Writes registry.csv and decides which doses the FHIR registry also imported.
pub fn write_registry(
    out: &mut impl Write,
    persons: &[Person],
    geo: &Geo,
    doses: &[CovidDose],
    seed: u64,
) -> std::io::Result<CsvOutcome> {
    let mut rng = rng::stream(seed, rng::ids::COVID_FATES);
    let mut m = CsvManifest::default();
    let mut buf: Vec<u8> = Vec::with_capacity(1 << 20);
    // The columns of CONTRACTS.md "Registry CSV"; each row below writes them in this order.
    buf.extend_from_slice(vaxlake_catalog::sources::registry_header().as_bytes());
    buf.push(b'\n');
    let young: Vec<u32> = (0..persons.len() as u32)
        .filter(|&i| {
            let p = &persons[i as usize];
            p.in_registry() && p.at_risk() && p.birth > ymd(2021, 3, 1)
        })
        .collect();
    let ctx = BadCtx {
        persons,
        geo,
        young,
    };
    let copy_person = |i: u32| {
        persons[i as usize].valid_patient()
            && (rng::hash(&[seed, 0xC0B1, u64::from(i)]) % 1000) < 100
    };

    let mut event_no = 0u32;
    let mut deferred: Vec<(Ts, u32, Vec<u8>)> = Vec::new();
    let mut copies = Vec::new();
    let mut valid_events = 0u64;

    for d in doses {
        for kind in BAD_ROWS {
            if rng.chance(0.003) {
                event_no += 1;
                bad_row(&ctx, &mut m, kind, d, &mut rng, &mut buf, event_no);
            }
        }
        event_no += 1;
        valid_events += 1;
        let person = &persons[d.person as usize];
        let row = Row {
            event_no,
            nid: &person.nid,
            person,
            atc: d.product.vax().atc(),
            name: d.product.name(),
            lot: d.lot,
            dose_no: d.dose_no,
            administered: Administered::Date(d.date),
            vaccinator: d.vaccinator,
            status: "completed",
            rec: d.rec,
            field_error: 0,
        };
        push_row(&mut buf, geo, &row);
        m.rows += 1;
        let u = rng.unit();
        let later =
            d.rec + i64::from(rng.between(1, 200)) * 1440 + i64::from(rng.between(-120, 120));
        if u < 0.0085 && later <= EXPORT_END {
            let mut version = Vec::with_capacity(160);
            if u < 0.006 {
                // A correction: the lot, the date or the dose number was mistyped.
                let mut fixed = Row { rec: later, ..row };
                let (mut lot, mut day, mut dose_no) = (d.lot, d.date, d.dose_no);
                match rng.below(3) {
                    0 => lot = lot_code(seed, d.product.vax(), d.date, 100 + rng.below(50)),
                    1 => day = (d.date + rng.between(-3, 3)).max(person.birth),
                    _ => dose_no = if d.dose_no > 1 { d.dose_no - 1 } else { 2 },
                }
                fixed.lot = lot;
                fixed.administered = Administered::Date(day);
                fixed.dose_no = dose_no;
                push_row(&mut version, geo, &fixed);
                m.corrections += 1;
            } else {
                push_row(
                    &mut version,
                    geo,
                    &Row {
                        rec: later,
                        status: "entered-in-error",
                        ..row
                    },
                );
                m.entered_in_error += 1;
            }
            deferred.push((later, event_no, version));
        } else if copy_person(d.person) {
            let imported = if d.rec < local_ts(ymd(2021, 12, 1), 0) {
                local_ts(
                    ymd(2021, 12, 1) + rng.between(0, 120),
                    i64::from(rng.between(7 * 60, 20 * 60)),
                )
            } else {
                (d.rec + i64::from(rng.between(60, 30 * 1440))).min(EXPORT_END)
            };
            copies.push(Copy {
                event_no,
                dose: *d,
                imported,
            });
        }
        if buf.len() > 1 << 20 {
            out.write_all(&buf)?;
            buf.clear();
        }
    }
    // At least one bad row of every kind, whatever the size.
    let counts = |m: &CsvManifest| {
        [
            m.bad.invalid_check_digit,
            m.bad.unknown_atc,
            m.bad.dose_before_birth,
            m.bad.bad_date,
            m.bad.bad_field_count,
        ]
    };
    let fallback = doses.first().copied().or_else(|| {
        persons
            .iter()
            .position(|p| p.in_registry() && p.at_risk())
            .map(|i| CovidDose {
                person: i as u32,
                date: ymd(2021, 6, 1)
                    .max(add_years(persons[i].birth, 12))
                    .min(ymd(2024, 12, 31)),
                rec: local_ts(ymd(2021, 6, 1), 600),
                lot: 1,
                vaccinator: 1,
                product: Product::Comirnaty,
                dose_no: 1,
            })
    });
    if let Some(d) = fallback {
        for (kind, n) in BAD_ROWS.into_iter().zip(counts(&m)) {
            if n == 0 {
                event_no += 1;
                bad_row(&ctx, &mut m, kind, &d, &mut rng, &mut buf, event_no);
            }
        }
    }
    // The change log: later versions, in the order they were recorded.
    deferred.sort_by_key(|(t, no, _)| (*t, *no));
    for (_, _, line) in &deferred {
        buf.extend_from_slice(line);
        m.rows += 1;
    }
    out.write_all(&buf)?;

    m.expected_quarantined = counts(&m).iter().sum();
    m.expected_accepted = m.rows - m.expected_quarantined;
    m.current_events = valid_events - m.entered_in_error;
    copies.sort_by_key(|c: &Copy| (c.dose.person, c.dose.date, c.event_no));
    Ok(CsvOutcome {
        manifest: m,
        copies,
    })
}
