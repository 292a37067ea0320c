// Numbers and dates as the reader's language writes them. The raw API value of every figure
// also sits in the data table's data-value attribute, so tests compare without parsing prose.

import { lang, t } from './i18n.js';

const formatters = new Map();

function numberFormat(options) {
  const key = `${lang()}|${JSON.stringify(options)}`;
  if (!formatters.has(key)) {
    formatters.set(key, new Intl.NumberFormat(lang() === 'fr' ? 'fr-FR' : 'en-GB', options));
  }
  return formatters.get(key);
}

/** 0.9223 → "92.2%" (en) or "92,2 %" (fr). */
export function percent(value, digits = 1) {
  if (value == null) return '—';
  return numberFormat({ style: 'percent', minimumFractionDigits: digits, maximumFractionDigits: digits }).format(value);
}

/** 12345 → "12,345" (en) or "12 345" (fr). */
export function count(value) {
  if (value == null) return '—';
  return numberFormat({ maximumFractionDigits: 0 }).format(value);
}

/** A decimal with up to `digits` digits after the point. */
export function decimal(value, digits = 1) {
  if (value == null) return '—';
  return numberFormat({ minimumFractionDigits: 0, maximumFractionDigits: digits }).format(value);
}

/** "2026-11-23T22:15:02Z" → a local date and time. */
export function dateTime(value) {
  if (value == null) return t('never');
  const date = new Date(value);
  if (Number.isNaN(date.getTime())) return String(value);
  return new Intl.DateTimeFormat(lang() === 'fr' ? 'fr-FR' : 'en-GB', {
    dateStyle: 'medium',
    timeStyle: 'short',
  }).format(date);
}

/** "2025-12-31" → a date in words (the day as written, no time zone shift). */
export function date(value) {
  if (value == null) return '—';
  const match = /^(\d{4})-(\d{2})-(\d{2})$/.exec(String(value));
  if (!match) return String(value);
  const day = new Date(Date.UTC(Number(match[1]), Number(match[2]) - 1, Number(match[3])));
  return new Intl.DateTimeFormat(lang() === 'fr' ? 'fr-FR' : 'en-GB', { dateStyle: 'medium', timeZone: 'UTC' }).format(day);
}

/**
 * A published band of a withheld cell (shares 0.85, 1.0) as readers write a range of
 * percentages: "85–100%" (en) or "85–100 %" (fr). The grid's limits are whole percents;
 * a finer limit would keep its decimal.
 */
export function band(low, high) {
  if (low == null || high == null) return '—';
  const plain = numberFormat({ minimumFractionDigits: 0, maximumFractionDigits: 1 }).format(low * 100);
  return `${plain}–${percentLimit(high)}`;
}

/** A band's limit as a percentage without needless decimals: 0.85 → "85%", 0.975 → "97.5%". */
export function percentLimit(value) {
  if (value == null) return '—';
  return numberFormat({ style: 'percent', minimumFractionDigits: 0, maximumFractionDigits: 1 }).format(value);
}

/** Formats `value` by a declared format name (percent, count, decimal, rate, date, datetime, text). */
export function byFormat(format, value) {
  switch (format) {
    case 'percent':
      return percent(value);
    case 'count':
      return count(value);
    case 'decimal':
      return decimal(value, 1);
    case 'rate':
      return decimal(value, 1);
    case 'years':
      return decimal(value, 1);
    case 'date':
      return date(value);
    case 'datetime':
      return dateTime(value);
    default:
      return value == null ? '—' : String(value);
  }
}
