// Which cohorts (birth years, season start years, calendar years) a selector offers for an
// indicator, and which one is the newest with complete follow-up: a cohort is complete when
// its youngest child has reached the indicator's age by the newest dose in the warehouse.

const SPAN = 10;

function yearOf(day) {
  const match = /^(\d{4})-(\d{2})-(\d{2})/.exec(day ?? '');
  return match ? { year: Number(match[1]), month: Number(match[2]), day: Number(match[3]) } : null;
}

/** {options: [{value, label}], latestComplete} for `indicator` (a catalogue entry) given `dataUntil`. */
export function cohortsFor(indicator, dataUntil) {
  const until = yearOf(dataUntil) ?? { year: new Date().getFullYear(), month: 12, day: 31 };
  let newest;
  let complete;
  let label = (year) => String(year);
  if (indicator?.kind === 'season') {
    // The season starting in year S ends on 31 August of S + 1.
    newest = until.month >= 9 ? until.year : until.year - 1;
    complete = until.month > 8 || (until.month === 8 && until.day === 31) ? until.year - 1 : until.year - 2;
    label = (year) => `${year}/${String((year + 1) % 100).padStart(2, '0')}`;
  } else if (indicator?.kind === 'age_band') {
    newest = until.year;
    complete = until.month === 12 && until.day === 31 ? until.year : until.year - 1;
  } else {
    const ageMonths = indicator?.age_months ?? 12;
    // Born in December of year Y, a child reaches M months in month 12·Y + 11 + M.
    const monthEnd = new Date(Date.UTC(until.year, until.month, 0)).getUTCDate() === until.day;
    const lastFullMonth = until.year * 12 + (until.month - 1) - (monthEnd ? 0 : 1);
    newest = until.year;
    complete = Math.floor((lastFullMonth - 11 - ageMonths) / 12);
  }
  const options = [];
  for (let year = newest; year > complete - SPAN; year -= 1) options.push({ value: String(year), label: label(year) });
  return { options, latestComplete: String(complete) };
}

/** The `count` newest complete cohorts of `indicator`, oldest first. */
export function recentCompleteCohorts(indicator, dataUntil, count) {
  const latest = Number(cohortsFor(indicator, dataUntil).latestComplete);
  const years = [];
  for (let year = latest - count + 1; year <= latest; year += 1) years.push(String(year));
  return years;
}

/** A cohort as readers name it: "2024/25" for a season, the year otherwise. */
export function cohortLabel(indicator, year) {
  if (indicator?.kind === 'season') {
    const start = Number(year);
    return `${start}/${String((start + 1) % 100).padStart(2, '0')}`;
  }
  return String(year);
}
