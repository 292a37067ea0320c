// Helpers shared by the chart types: row labels, suppression wording, hatched bands.

import { band, percent, percentLimit } from '../format.js';
import { t } from '../i18n.js';

/** The group a row of a coverage-like answer stands for (commune, canton, sex, age band...). */
export function groupLabel(row, by) {
  if ('group' in row) return row.group ?? t('national');
  if (by === 'commune' || (by == null && 'commune' in row)) return row.commune ?? t('no_commune');
  if (by === 'canton' || (by == null && 'canton' in row)) return row.canton ?? t('no_canton');
  if (by === 'sex' || (by == null && 'sex' in row)) return t(`sex_${row.sex}`);
  if ('age_band' in row) return row.age_band;
  if ('season' in row) return row.season;
  return t('national');
}

/** The canton of a commune row: the row's own, else the public geography's (/api/geography). */
export function cantonOf(row, geography) {
  if (row.canton != null) return row.canton;
  return (geography?.cantons ?? []).find((entry) => entry.communes.includes(row.commune))?.canton ?? '';
}

/** "suppressed (< 8)": the only thing shown for a withheld cell, never a number. */
export function suppressedText(body) {
  return t('suppressed', { n: body?.suppression_threshold ?? '?' });
}

/** Whether a row is withheld but carries a published band (band_low, band_high). */
export function hasBand(row) {
  return row?.suppressed === true && row.band_low != null && row.band_high != null;
}

/** A withheld row's band as shown in a tile or a bar: "85–100%". */
export function bandText(row) {
  return band(row.band_low, row.band_high);
}

/**
 * What a band means, for tooltips: "coverage between 85% and 100%: a published band, the
 * figure itself is withheld" (a band below 100 % excludes its upper limit).
 */
export function bandSentence(row) {
  const words = { low: percentLimit(row.band_low), high: percentLimit(row.band_high) };
  return row.band_high >= 1 ? t('band_between', words) : t('band_at_least', words);
}

/** "suppressed (< 8)", and for a banded row "; coverage between 85% and 100%: ...". */
export function withheldText(row, body) {
  return hasBand(row) ? t('withheld_band', { suppressed: suppressedText(body), band: bandSentence(row) }) : suppressedText(body);
}

/** "92.2% (95% CI 87.6% to 95.2%)", or the suppression label. */
export function valueWithInterval(value, low, high, suppressed, body) {
  if (suppressed) return suppressedText(body);
  if (value == null) return t('no_value');
  const interval = low == null || high == null ? '' : ` (${t('ci')} ${t('ci_range', { low: percent(low), high: percent(high) })})`;
  return `${percent(value)}${interval}`;
}

/** Escapes text for an ECharts rich tooltip (HTML). */
export function escapeHtml(text) {
  return String(text).replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]);
}

/**
 * An ECharts custom-series item drawing a hatched band (grey outline, diagonal lines) from
 * (x0, y0) to (x1, y1) in pixels, with `label` inside: how withheld cells look in every chart.
 */
export function hatchedBand(x0, y0, x1, y1, label) {
  const left = Math.min(x0, x1);
  const right = Math.max(x0, x1);
  const top = Math.min(y0, y1);
  const bottom = Math.max(y0, y1);
  const height = bottom - top;
  const children = [
    {
      type: 'rect',
      shape: { x: left, y: top, width: right - left, height },
      style: { fill: '#f3f4f6', stroke: '#6b7280', lineWidth: 1 },
    },
  ];
  const step = 8;
  for (let x = left; x < right; x += step) {
    // Each stroke rises to the right, cut where it meets the band's right edge.
    const rise = Math.min(height, right - x);
    children.push({
      type: 'line',
      shape: { x1: x, y1: bottom, x2: x + rise, y2: bottom - rise },
      style: { stroke: '#9ca3af', lineWidth: 1 },
    });
  }
  for (let y = bottom - step; y > top; y -= step) {
    const rise = Math.min(y - top, right - left);
    children.push({
      type: 'line',
      shape: { x1: left, y1: y, x2: left + rise, y2: y - rise },
      style: { stroke: '#9ca3af', lineWidth: 1 },
    });
  }
  children.push({
    type: 'text',
    style: {
      x: left + 6,
      y: top + height / 2,
      text: label,
      fill: '#1f2933',
      backgroundColor: '#f3f4f6',
      padding: [1, 3],
      verticalAlign: 'middle',
      font: '12px system-ui, sans-serif',
    },
  });
  return { type: 'group', children, silent: false };
}

/** The unique values of a list, in first-seen order. */
export function unique(values) {
  return [...new Set(values)];
}
