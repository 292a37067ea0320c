//! The FHIR Bulk Data export: `Patient.ndjson` and `Immunization.ndjson`.
//!
//! Built in two passes per batch of persons: `plan_chunk` decides every line (in parallel,
//! one random stream per chunk), then, once the Immunization ids of earlier chunks are
//! known, `write_chunk` formats them (in parallel again) and counts what it wrote.

use crate::broken_rules;
use crate::cases::{self, CaseRec};
use crate::covid::Copy;
use crate::date::{self, add_months, local_ts, push_date, push_local, push_utc, ymd, Day, Ts};
use crate::manifest::FhirManifest;
use crate::people::{Kind, Person};
use crate::reference::{
    lot_code, push_lot, Geo, Practitioners, Product, Vax, FAMILY_NAMES, FEMALE_GIVEN_OLDER, NOTES,
    NOT_DONE_REASONS, STREETS, UNKNOWN_ATC,
};
use crate::rng::{self, RngExt};
use crate::schedule::{self, CommuneFx, Dose};
use crate::text::{push_json_str, push_padded, push_uint};
use crate::{CVE_START, EXPORT_DATE, EXPORT_END, PERSON_CHUNK};

pub const NATIONAL_ID_SYSTEM: &str = "urn:oid:1.3.182.4.4";
pub const COVID_SOURCE_SYSTEM: &str = "urn:vaxlake:source-system:covid19";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BadKind {
    BrokenJson,
    UnknownAtc,
    BeforeBirth,
    Future,
    MissingPatient,
}

const BAD_KINDS: [BadKind; 5] = [
    BadKind::BrokenJson,
    BadKind::UnknownAtc,
    BadKind::BeforeBirth,
    BadKind::Future,
    BadKind::MissingPatient,
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Code {
    Vax(Vax),
    Product(Product),
    Unknown(u8),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    Registry,
    /// The same dose entered a second time, same day, under another id.
    Duplicate,
    /// Imported from the COVID-19 system.
    Copy {
        event_no: u32,
        vaccinator: u16,
    },
    Bad(BadKind),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fate {
    Plain,
    Corrected {
        updated: Ts,
        date: Day,
        lot: u32,
        dose_no: u8,
    },
    EnteredInError {
        updated: Ts,
    },
}

#[derive(Debug, Clone, Copy)]
pub struct Imm {
    pub origin: Origin,
    pub code: Code,
    pub pat_ref: u32,
    pub date: Day,
    pub recorded: Ts,
    pub updated: Ts,
    /// 0 = no lot number.
    pub lot: u32,
    /// 0 = no practitioner (COVID copies name the vaccinator instead).
    pub prac: u16,
    pub dose_no: u8,
    pub not_done: u8,
    /// 0 = no note, else index + 1 into `NOTES`.
    pub note: u8,
    pub fate: Fate,
    /// Keeps a person's lines in date order (a bad line sits next to its source).
    order: Day,
}

impl Imm {
    fn is_flu(&self) -> bool {
        matches!(self.code, Code::Vax(v) if v.is_flu())
    }
    fn has_measles(&self) -> bool {
        matches!(self.code, Code::Vax(v) if v.has_measles())
    }
    /// The date of the current version if this line ends up a current completed dose.
    pub(crate) fn current_completed_date(&self) -> Option<Day> {
        if self.not_done != 0 || !matches!(self.origin, Origin::Registry | Origin::Duplicate) {
            return None;
        }
        match self.fate {
            Fate::Plain => Some(self.date),
            Fate::Corrected { date, .. } => Some(date),
            Fate::EnteredInError { .. } => None,
        }
    }
}

/// Everything shared by the chunks.
pub struct Ctx<'a> {
    pub seed: u64,
    pub persons: &'a [Person],
    pub geo: &'a Geo,
    pub fx: &'a [CommuneFx],
    pub pracs: &'a Practitioners,
    /// Sorted by person.
    pub copies: &'a [Copy],
    pub max_pat_no: u32,
}

/// What one chunk of persons produces before formatting.
pub struct ChunkPlan {
    pub start: usize,
    pub end: usize,
    /// Per person of the chunk, the range of its lines in `imms`.
    pub spans: Vec<(u32, u32)>,
    pub imms: Vec<Imm>,
    pub flu_cases: Vec<CaseRec>,
    /// Residents born 2000–2023 without a current measles-containing dose.
    pub measles_candidates: Vec<u32>,
    /// Doses planted against the dose rules, of accepted Patients.
    pub invalid_doses: crate::manifest::InvalidDosesManifest,
}

fn count_planted(doses: &[Dose], counts: &mut crate::manifest::InvalidDosesManifest) {
    for dose in doses {
        match dose.planted {
            schedule::Planted::No => {}
            schedule::Planted::Mcv0 => counts.mcv0 += 1,
            schedule::Planted::DtpTooClose => counts.dtp_too_close += 1,
            schedule::Planted::HpvEarlySecond => counts.hpv_second_too_early += 1,
            schedule::Planted::HpvThird => counts.hpv_third_after_early_second += 1,
        }
    }
}

pub fn chunk_count(persons: usize) -> usize {
    persons.div_ceil(PERSON_CHUNK)
}

pub fn plan_chunk(ctx: &Ctx, chunk: usize) -> ChunkPlan {
    let mut rng = rng::stream(ctx.seed, rng::ids::FHIR_CHUNK + chunk as u64);
    let start = chunk * PERSON_CHUNK;
    let end = (start + PERSON_CHUNK).min(ctx.persons.len());
    let mut plan = ChunkPlan {
        start,
        end,
        spans: Vec::with_capacity(end - start),
        imms: Vec::with_capacity((end - start) * 6),
        flu_cases: Vec::new(),
        measles_candidates: Vec::new(),
        invalid_doses: Default::default(),
    };
    let mut doses: Vec<Dose> = Vec::with_capacity(40);
    let first_copy = ctx
        .copies
        .partition_point(|c| (c.dose.person as usize) < start);
    let mut next_copy = first_copy;
    for pi in start..end {
        let p = &ctx.persons[pi];
        let copies_from = next_copy;
        while next_copy < ctx.copies.len() && ctx.copies[next_copy].dose.person as usize == pi {
            next_copy += 1;
        }
        let first = plan.imms.len() as u32;
        if p.in_registry() && p.kind != Kind::Ghost {
            schedule::plan_person(p, &ctx.fx[p.commune as usize], &mut rng, &mut doses);
            if p.valid_patient() {
                count_planted(&doses, &mut plan.invalid_doses);
            }
            person_lines(
                ctx,
                p,
                &doses,
                &ctx.copies[copies_from..next_copy],
                &mut rng,
                &mut plan.imms,
            );
        }
        // Nothing is recorded after a death.
        if let Some(death) = p.deceased {
            let mut k = first as usize;
            while k < plan.imms.len() {
                let imm = &plan.imms[k];
                let after = imm.date > death
                    || matches!(imm.fate, Fate::Corrected { date, .. } if date > death);
                if after {
                    plan.imms.remove(k);
                } else {
                    k += 1;
                }
            }
        }
        if p.valid_patient() {
            broken_rules::count(
                p.birth,
                &plan.imms[first as usize..],
                &mut plan.invalid_doses.in_the_files,
            );
        }
        let last = plan.imms.len() as u32;
        plan.spans.push((first, last));
        if !p.at_risk() {
            continue;
        }
        // What the warehouse will see of this person's vaccinations (nothing of a Patient
        // whose record is quarantined).
        let lines = if p.valid_patient() {
            &plan.imms[first as usize..last as usize]
        } else {
            &[]
        };
        let mut flu = [None; cases::FLU_CASE_SEASONS.len()];
        let mut measles = false;
        for imm in lines {
            let Some(d) = imm.current_completed_date() else {
                continue;
            };
            measles |= imm.has_measles();
            if imm.is_flu() {
                for (k, season) in cases::FLU_CASE_SEASONS.iter().enumerate() {
                    let (from, to) = cases::flu_dose_window(*season);
                    if d >= from && d <= to && flu[k].is_none_or(|f| d < f) {
                        flu[k] = Some(d);
                    }
                }
            }
        }
        let before = plan.flu_cases.len();
        cases::simulate_flu(p, pi as u32, &flu, &mut rng, &mut plan.flu_cases);
        if p.deceased.is_some() {
            let mut k = before;
            while k < plan.flu_cases.len() {
                if p.alive_on(plan.flu_cases[k].onset) {
                    k += 1;
                } else {
                    plan.flu_cases.remove(k);
                }
            }
        }
        let cohort = date::year(p.birth);
        if !measles && p.kind == Kind::Resident && !p.invalid_nid && (2000..=2023).contains(&cohort)
        {
            plan.measles_candidates.push(pi as u32);
        }
    }
    plan
}

/// Age in completed months on `d`, as the warehouse computes ages at doses.
fn completed_months(birth: Day, d: Day) -> i32 {
    let (by, bm, _) = date::civil(birth);
    let (y, m, _) = date::civil(d);
    let mut k = (y - by) * 12 + m as i32 - bm as i32;
    while k > 0 && add_months(birth, k) > d {
        k -= 1;
    }
    k.max(0)
}

/// A corrected occurrence date; half of the corrections of young children's doses move the
/// dose across a month-of-age boundary (so age-based indicators change).
fn corrected_date<R: RngExt>(birth: Day, d: Day, rng: &mut R) -> Day {
    if d - birth < 6 * 365 && rng.chance(0.5) {
        let m = completed_months(birth, d);
        let up = add_months(birth, m + 1);
        let down = add_months(birth, m) - 1;
        let down_ok = m >= 1 && down >= birth;
        let up_ok = up <= EXPORT_DATE;
        match (up_ok, down_ok, rng.chance(0.5)) {
            (true, _, true) | (true, false, _) => return up,
            (_, true, _) => return down,
            _ => {}
        }
    }
    let shift = rng.between(1, 7) * if rng.chance(0.5) { 1 } else { -1 };
    (d + shift).clamp(birth, EXPORT_DATE)
}

fn person_lines<R: RngExt>(
    ctx: &Ctx,
    p: &Person,
    doses: &[Dose],
    copies: &[Copy],
    rng: &mut R,
    out: &mut Vec<Imm>,
) {
    let valid = p.valid_patient();
    let canton = ctx.geo.communes[p.commune as usize].canton;
    // Doses given before the electronic record existed were transcribed in one sitting.
    let transcribed = (CVE_START + rng.between(0, 1300)).min(EXPORT_DATE);
    let mut minute = i64::from(rng.between(8 * 60, 17 * 60));
    let first_line = out.len();
    for d in doses {
        if !valid && d.not_done != 0 {
            continue;
        }
        let prac = if rng.chance(0.8) {
            p.prac
        } else {
            ctx.pracs.pick(canton, rng)
        };
        let recorded = if d.date < CVE_START {
            minute += 1;
            local_ts(transcribed, minute)
        } else {
            let late = if rng.chance(0.85) {
                0
            } else {
                rng.between(1, 4)
            };
            local_ts(
                (d.date + late).min(EXPORT_DATE),
                i64::from(rng.between(8 * 60, 19 * 60)),
            )
        };
        let lot = if d.not_done == 0 {
            lot_code(ctx.seed, d.vax, d.date, rng.below(3))
        } else {
            0
        };
        let note = if d.not_done == 0 && rng.chance(0.07) {
            let mut k = rng.below(NOTES.len() as u64) as usize;
            // Only children come with their mother.
            if NOTES[k].contains("{m}") && d.date - p.birth > 16 * 365 {
                k = 0;
            }
            k as u8 + 1
        } else {
            0
        };
        let dose_no = if rng.chance(0.01) {
            if d.dose_no > 1 {
                1
            } else {
                2
            }
        } else {
            d.dose_no
        };
        let mut imm = Imm {
            origin: Origin::Registry,
            code: Code::Vax(d.vax),
            pat_ref: p.pat_no,
            date: d.date,
            recorded,
            updated: recorded,
            lot,
            prac,
            dose_no,
            not_done: d.not_done,
            note,
            fate: Fate::Plain,
            order: d.date,
        };
        let planted = valid && d.not_done == 0;
        let u = if planted { rng.unit() } else { 1.0 };
        if u < 0.013 {
            let later = recorded + i64::from(rng.between(60, 90 * 1440));
            if later <= EXPORT_END {
                imm.fate = if u < 0.010 {
                    let (mut date, mut lot, mut dose_no) = (imm.date, imm.lot, imm.dose_no);
                    match rng.below(100) {
                        0..=44 => date = corrected_date(p.birth, imm.date, rng),
                        45..=84 => lot = lot_code(ctx.seed, d.vax, d.date, 10 + rng.below(5)),
                        _ => {
                            dose_no = if dose_no == d.dose_no {
                                dose_no + 1
                            } else {
                                d.dose_no
                            }
                        }
                    }
                    Fate::Corrected {
                        updated: later,
                        date,
                        lot,
                        dose_no,
                    }
                } else {
                    Fate::EnteredInError { updated: later }
                };
            }
        }
        out.push(imm);
        if (0.013..0.018).contains(&u) {
            let again = recorded + i64::from(rng.between(1, 30));
            out.push(Imm {
                origin: Origin::Duplicate,
                recorded: again,
                updated: again,
                note: 0,
                ..imm
            });
        }
        if planted {
            for kind in BAD_KINDS {
                if rng.chance(0.003) {
                    out.push(bad_line(ctx, p, &imm, kind, rng));
                }
            }
        }
    }
    if p.bad_host {
        for kind in BAD_KINDS {
            if !out[first_line..]
                .iter()
                .any(|i| i.origin == Origin::Bad(kind))
            {
                let source = out[first_line..]
                    .iter()
                    .find(|i| i.origin == Origin::Registry && i.not_done == 0)
                    .copied()
                    .unwrap_or_else(|| synthetic_dose(ctx, p));
                out.push(bad_line(ctx, p, &source, kind, rng));
            }
        }
    }
    for c in copies {
        out.push(Imm {
            origin: Origin::Copy {
                event_no: c.event_no,
                vaccinator: c.dose.vaccinator,
            },
            code: Code::Product(c.dose.product),
            pat_ref: p.pat_no,
            date: c.dose.date,
            recorded: c.dose.rec,
            updated: c.imported,
            lot: c.dose.lot,
            prac: 0,
            dose_no: c.dose.dose_no,
            not_done: 0,
            note: 0,
            fate: Fate::Plain,
            order: c.dose.date,
        });
    }
    out[first_line..].sort_by_key(|i| i.order);
}

/// A Td booster, for a host of planted bad lines who has no dose of their own.
fn synthetic_dose(ctx: &Ctx, p: &Person) -> Imm {
    let date = (p.birth + 400).clamp(ymd(2022, 3, 1), EXPORT_DATE);
    let recorded = local_ts(date, 600);
    Imm {
        origin: Origin::Registry,
        code: Code::Vax(Vax::Td),
        pat_ref: p.pat_no,
        date,
        recorded,
        updated: recorded,
        lot: lot_code(ctx.seed, Vax::Td, date, 0),
        prac: p.prac,
        dose_no: 1,
        not_done: 0,
        note: 0,
        fate: Fate::Plain,
        order: date,
    }
}

/// A line the ingest must quarantine, derived from a real dose (the same dose sent again
/// with an error, or a line cut short).
fn bad_line<R: RngExt>(ctx: &Ctx, p: &Person, source: &Imm, kind: BadKind, rng: &mut R) -> Imm {
    let mut bad = Imm {
        origin: Origin::Bad(kind),
        fate: Fate::Plain,
        note: 0,
        ..*source
    };
    match kind {
        BadKind::BrokenJson => {}
        BadKind::UnknownAtc => bad.code = Code::Unknown(rng.below(UNKNOWN_ATC.len() as u64) as u8),
        BadKind::BeforeBirth => bad.date = p.birth - rng.between(1, 400),
        BadKind::Future => {
            let (y, m, d) = date::civil(source.date);
            bad.date = ymd(2090 + y.rem_euclid(10), m, d.min(28));
        }
        BadKind::MissingPatient => bad.pat_ref = ctx.max_pat_no + 1000 + rng.below(100_000) as u32,
    }
    bad
}

/// Formatted output of one chunk.
pub struct ChunkBytes {
    pub patients: Vec<u8>,
    pub immunizations: Vec<u8>,
    /// Later versions (corrections, entered-in-error), appended after all first versions.
    pub later_versions: Vec<u8>,
    pub counts: FhirManifest,
}

pub fn write_chunk(ctx: &Ctx, plan: &ChunkPlan, first_id: u64) -> ChunkBytes {
    let mut b = ChunkBytes {
        patients: Vec::with_capacity((plan.end - plan.start) * 420),
        immunizations: Vec::with_capacity(plan.imms.len() * 470),
        later_versions: Vec::new(),
        counts: FhirManifest::default(),
    };
    let c = &mut b.counts;
    let mut id = first_id;
    for (k, pi) in (plan.start..plan.end).enumerate() {
        let p = &ctx.persons[pi];
        if p.in_registry() {
            let at = b.patients.len();
            push_patient(&mut b.patients, ctx, p);
            c.patient_lines += 1;
            if p.kind == Kind::Ghost {
                truncate_line(
                    &mut b.patients,
                    at,
                    rng::hash(&[ctx.seed, 0x6057, u64::from(p.pat_no)]),
                );
                c.bad.broken_json_patient += 1;
            } else if p.invalid_nid {
                c.bad.invalid_check_digit_patients += 1;
            } else {
                c.patients_accepted += 1;
            }
        }
        let (from, to) = plan.spans[k];
        for imm in &plan.imms[from as usize..to as usize] {
            id += 1;
            let at = b.immunizations.len();
            push_immunization(&mut b.immunizations, ctx, p, imm, id, Version::First);
            c.immunization_lines += 1;
            match imm.origin {
                Origin::Bad(kind) => match kind {
                    BadKind::BrokenJson => {
                        broken_json(&mut b.immunizations, at, rng::hash(&[ctx.seed, 0xB0C, id]));
                        c.bad.broken_json_immunization += 1;
                    }
                    BadKind::UnknownAtc => c.bad.unknown_atc += 1,
                    BadKind::BeforeBirth => c.bad.dose_before_birth += 1,
                    BadKind::Future => c.bad.dose_in_future += 1,
                    BadKind::MissingPatient => c.bad.missing_patient += 1,
                },
                _ if !p.valid_patient() => c.bad.immunizations_of_invalid_patients += 1,
                origin => {
                    match origin {
                        Origin::Duplicate => c.same_day_duplicates += 1,
                        Origin::Copy { .. } => c.covid_copies += 1,
                        _ => {}
                    }
                    if imm.not_done != 0 {
                        c.not_done += 1;
                    }
                    match imm.fate {
                        Fate::Plain => c.count_current(imm.not_done != 0),
                        Fate::Corrected { .. } => {
                            push_immunization(
                                &mut b.later_versions,
                                ctx,
                                p,
                                imm,
                                id,
                                Version::Corrected,
                            );
                            c.corrections += 1;
                            c.count_current(false);
                        }
                        Fate::EnteredInError { .. } => {
                            push_immunization(
                                &mut b.later_versions,
                                ctx,
                                p,
                                imm,
                                id,
                                Version::EnteredInError,
                            );
                            c.entered_in_error += 1;
                        }
                    }
                }
            }
        }
    }
    b
}

impl FhirManifest {
    fn count_current(&mut self, not_done: bool) {
        self.current_events += 1;
        if not_done {
            self.current_not_done += 1;
        } else {
            self.current_completed += 1;
        }
    }

    /// Adds a chunk's counts.
    pub fn add(&mut self, o: &FhirManifest) {
        self.patient_lines += o.patient_lines;
        self.immunization_lines += o.immunization_lines;
        self.bad.broken_json_patient += o.bad.broken_json_patient;
        self.bad.broken_json_immunization += o.bad.broken_json_immunization;
        self.bad.invalid_check_digit_patients += o.bad.invalid_check_digit_patients;
        self.bad.immunizations_of_invalid_patients += o.bad.immunizations_of_invalid_patients;
        self.bad.unknown_atc += o.bad.unknown_atc;
        self.bad.dose_before_birth += o.bad.dose_before_birth;
        self.bad.dose_in_future += o.bad.dose_in_future;
        self.bad.missing_patient += o.bad.missing_patient;
        self.patients_accepted += o.patients_accepted;
        self.corrections += o.corrections;
        self.entered_in_error += o.entered_in_error;
        self.not_done += o.not_done;
        self.same_day_duplicates += o.same_day_duplicates;
        self.covid_copies += o.covid_copies;
        self.current_events += o.current_events;
        self.current_completed += o.current_completed;
        self.current_not_done += o.current_not_done;
    }

    /// Totals once every chunk is in.
    pub fn finish(&mut self) {
        let later = self.corrections + self.entered_in_error;
        self.immunization_lines += later;
        let b = &mut self.bad;
        b.broken_json = b.broken_json_patient + b.broken_json_immunization;
        self.patient_quarantined = b.broken_json_patient + b.invalid_check_digit_patients;
        self.immunization_quarantined = b.broken_json_immunization
            + b.immunizations_of_invalid_patients
            + b.unknown_atc
            + b.dose_before_birth
            + b.dose_in_future
            + b.missing_patient;
        self.expected_quarantined = self.patient_quarantined + self.immunization_quarantined;
        self.expected_accepted =
            self.patient_lines + self.immunization_lines - self.expected_quarantined;
    }
}

/// Cuts a line short (as an interrupted export would), keeping the newline.
fn truncate_line(buf: &mut Vec<u8>, at: usize, h: u64) {
    let len = buf.len() - 1 - at;
    let mut cut = at + len * (30 + (h % 60) as usize) / 100;
    while cut > at && (buf[cut] & 0xC0) == 0x80 {
        cut -= 1;
    }
    buf.truncate(cut);
    buf.push(b'\n');
}

fn broken_json(buf: &mut Vec<u8>, at: usize, h: u64) {
    match h % 10 {
        0 => {
            buf.truncate(at);
            buf.extend_from_slice(b"<html><head><title>502 Bad Gateway</title></head><body>502 Bad Gateway</body></html>\n");
        }
        1 => {
            // A doubled comma after the resourceType.
            let pos = at + "{\"resourceType\":\"Immunization\"".len();
            buf.insert(pos, b',');
        }
        _ => truncate_line(buf, at, h >> 8),
    }
}

fn push_patient(buf: &mut Vec<u8>, ctx: &Ctx, p: &Person) {
    let h = rng::hash(&[ctx.seed, 0xA71E, u64::from(p.pat_no)]);
    let created = if p.birth < CVE_START {
        CVE_START + (h % 1300) as Day
    } else {
        p.birth + 1 + (h % 20) as Day
    };
    let updated = local_ts(
        created.min(EXPORT_DATE),
        7 * 60 + ((h >> 16) % (13 * 60)) as i64,
    );
    buf.extend_from_slice(b"{\"resourceType\":\"Patient\",\"id\":\"pat-");
    push_padded(buf, u64::from(p.pat_no), 6);
    buf.extend_from_slice(b"\",\"meta\":{\"lastUpdated\":\"");
    push_utc(buf, updated);
    buf.extend_from_slice(b"\"},\"identifier\":[{\"system\":\"");
    buf.extend_from_slice(NATIONAL_ID_SYSTEM.as_bytes());
    buf.extend_from_slice(b"\",\"value\":\"");
    buf.extend_from_slice(&p.patient_nid());
    buf.extend_from_slice(b"\"}],\"name\":[{\"family\":");
    push_json_str(buf, FAMILY_NAMES[p.family as usize]);
    buf.extend_from_slice(b",\"given\":[");
    let (given, second) = p.given_names();
    push_json_str(buf, given);
    if let Some(s) = second.filter(|s| *s != given) {
        buf.push(b',');
        push_json_str(buf, s);
    }
    buf.extend_from_slice(b"]}],\"gender\":\"");
    buf.extend_from_slice(p.sex.as_str().as_bytes());
    buf.extend_from_slice(b"\",\"birthDate\":\"");
    push_date(buf, p.birth);
    if let Some(death) = p.deceased {
        buf.extend_from_slice(b"\",\"deceasedDateTime\":\"");
        push_date(buf, death);
    }
    buf.extend_from_slice(b"\",\"address\":[{\"line\":[");
    push_json_str(buf, &format!("{} {}", p.house, STREETS[p.street as usize]));
    if let Some((city, country)) = p.abroad() {
        buf.extend_from_slice(b"],\"city\":");
        push_json_str(buf, city);
        buf.extend_from_slice(b",\"country\":\"");
        buf.extend_from_slice(country.as_bytes());
        buf.extend_from_slice(b"\"}]}\n");
        return;
    }
    buf.extend_from_slice(b"],\"city\":");
    let commune = &ctx.geo.communes[p.commune as usize];
    push_json_str(buf, commune.name);
    if (h >> 40) % 100 >= 15 {
        buf.extend_from_slice(b",\"district\":");
        push_json_str(buf, ctx.geo.cantons[commune.canton]);
    }
    buf.extend_from_slice(b",\"postalCode\":\"L-");
    push_padded(buf, u64::from(p.postal), 4);
    buf.extend_from_slice(b"\",\"country\":\"LU\"}]}\n");
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Version {
    First,
    Corrected,
    EnteredInError,
}

fn push_note(buf: &mut Vec<u8>, ctx: &Ctx, p: &Person, note: u8, id: u64) {
    let h = rng::hash(&[ctx.seed, 0x0707E, id]);
    let template = NOTES[(note - 1) as usize];
    let mother = format!(
        "{} {}",
        FEMALE_GIVEN_OLDER[(h % FEMALE_GIVEN_OLDER.len() as u64) as usize],
        FAMILY_NAMES[p.family as usize]
    );
    let phone = format!("621 {:03} {:03}", (h >> 20) % 1000, (h >> 40) % 1000);
    let text = template.replace("{m}", &mother).replace("{p}", &phone);
    buf.extend_from_slice(b",\"note\":[{\"text\":");
    push_json_str(buf, &text);
    buf.extend_from_slice(b"}]");
}

fn push_immunization(
    buf: &mut Vec<u8>,
    ctx: &Ctx,
    p: &Person,
    imm: &Imm,
    id: u64,
    version: Version,
) {
    let (mut updated, mut date, mut lot, mut dose_no) =
        (imm.updated, imm.date, imm.lot, imm.dose_no);
    let mut status: &str = if imm.not_done != 0 {
        "not-done"
    } else {
        "completed"
    };
    match (version, imm.fate) {
        (
            Version::Corrected,
            Fate::Corrected {
                updated: u,
                date: d,
                lot: l,
                dose_no: n,
            },
        ) => {
            (updated, date, lot, dose_no) = (u, d, l, n);
        }
        (Version::EnteredInError, Fate::EnteredInError { updated: u }) => {
            updated = u;
            status = "entered-in-error";
        }
        _ => {}
    }
    buf.extend_from_slice(b"{\"resourceType\":\"Immunization\",\"id\":\"imm-");
    push_padded(buf, id, 7);
    buf.extend_from_slice(b"\",\"meta\":{\"lastUpdated\":\"");
    push_utc(buf, updated);
    buf.push(b'"');
    if let Origin::Copy { event_no, .. } = imm.origin {
        buf.extend_from_slice(b",\"source\":\"covid19\"},\"identifier\":[{\"system\":\"");
        buf.extend_from_slice(COVID_SOURCE_SYSTEM.as_bytes());
        buf.extend_from_slice(b"\",\"value\":\"CV-");
        push_padded(buf, u64::from(event_no), 7);
        buf.extend_from_slice(b"\"}]");
    } else {
        buf.push(b'}');
    }
    buf.extend_from_slice(b",\"status\":\"");
    buf.extend_from_slice(status.as_bytes());
    buf.push(b'"');
    if imm.not_done != 0 {
        let (code, display) = NOT_DONE_REASONS[(imm.not_done - 1) as usize];
        buf.extend_from_slice(
            b",\"statusReason\":{\"coding\":[{\"system\":\"http://terminology.hl7.org/CodeSystem/v3-ActReason\",\"code\":\"",
        );
        buf.extend_from_slice(code.as_bytes());
        buf.extend_from_slice(b"\",\"display\":\"");
        buf.extend_from_slice(display.as_bytes());
        buf.extend_from_slice(b"\"}]}");
    }
    let (atc, display) = match imm.code {
        Code::Vax(v) => (v.atc(), v.display()),
        Code::Product(pr) => (pr.vax().atc(), pr.name()),
        Code::Unknown(k) => (UNKNOWN_ATC[k as usize], "Vaccine (local code)"),
    };
    buf.extend_from_slice(
        b",\"vaccineCode\":{\"coding\":[{\"system\":\"http://www.whocc.no/atc\",\"code\":\"",
    );
    buf.extend_from_slice(atc.as_bytes());
    buf.extend_from_slice(b"\",\"display\":");
    push_json_str(buf, display);
    buf.extend_from_slice(b"}]},\"patient\":{\"reference\":\"Patient/pat-");
    push_padded(buf, u64::from(imm.pat_ref), 6);
    buf.extend_from_slice(b"\"},\"occurrenceDateTime\":\"");
    push_date(buf, date);
    buf.extend_from_slice(b"\",\"recorded\":\"");
    push_local(buf, imm.recorded);
    buf.push(b'"');
    if lot != 0 {
        buf.extend_from_slice(b",\"lotNumber\":\"");
        push_lot(buf, lot);
        buf.push(b'"');
    }
    match imm.origin {
        Origin::Copy { vaccinator, .. } => {
            buf.extend_from_slice(
                b",\"performer\":[{\"actor\":{\"identifier\":{\"system\":\"urn:vaxlake:source-system:covid19:vaccinator\",\"value\":\"VAC-",
            );
            push_padded(buf, u64::from(vaccinator), 4);
            buf.extend_from_slice(b"\"}}}]");
        }
        _ => {
            buf.extend_from_slice(
                b",\"performer\":[{\"actor\":{\"reference\":\"Practitioner/prac-",
            );
            push_padded(buf, u64::from(imm.prac), 4);
            buf.extend_from_slice(b"\"}}]");
        }
    }
    buf.extend_from_slice(b",\"protocolApplied\":[{\"doseNumberPositiveInt\":");
    push_uint(buf, u64::from(dose_no));
    buf.extend_from_slice(b"}]");
    if imm.note != 0 {
        push_note(buf, ctx, p, imm.note, id);
    }
    buf.extend_from_slice(b"}\n");
}
