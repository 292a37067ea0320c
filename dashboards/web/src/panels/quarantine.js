// Quarantined records by day received, stacked by reason. Reasons that differ only in a
// detail (a column number, an ATC code) are drawn as one; the table lists each as recorded.

import { baseOptions, chartIn } from '../charts.js';
import { count } from '../format.js';
import { t } from '../i18n.js';
import { escapeHtml } from './common.js';

const MAX_SERIES = 7;

/** "invalid JSON (syntax error at column 32)" → "invalid JSON"; "unknown ATC code J07BN99 (…)" → "unknown ATC code". */
export function reasonGroup(reason) {
  return String(reason)
    .replace(/\s*\(.*\)\s*/g, ' ')
    .replace(/\b[A-Z]\d{2}[A-Z0-9]{2,5}\b/g, '')
    .replace(/\d+/g, 'N')
    .replace(/\s+/g, ' ')
    .trim();
}

export async function load(panel, context) {
  const url = panel.url(context);
  return { url, ...(await panel.get(url)) };
}

export function draw(panel, answer, context) {
  const decl = panel.declaration;
  const rows = answer.body.rows ?? [];
  const days = [...new Set(rows.map((row) => row.day))].sort();
  const totals = new Map();
  for (const row of rows) totals.set(reasonGroup(row.reason), (totals.get(reasonGroup(row.reason)) ?? 0) + row.count);
  const ranked = [...totals.entries()].sort((a, b) => b[1] - a[1]).map(([group]) => group);
  const shown = ranked.slice(0, MAX_SERIES);
  const seriesOf = (row) => (shown.includes(reasonGroup(row.reason)) ? reasonGroup(row.reason) : t('other_reasons'));
  const names = ranked.length > MAX_SERIES ? [...shown, t('other_reasons')] : shown;
  const sums = new Map();
  for (const row of rows) {
    const keyName = `${seriesOf(row)}|${row.day}`;
    sums.set(keyName, (sums.get(keyName) ?? 0) + row.count);
  }
  const legendHeight = names.length * 20 + 8;
  const chart = chartIn(panel.chartBox(panel.title.textContent, 300 + legendHeight));
  chart.setOption(
    {
      ...baseOptions(),
      grid: { left: 8, right: 16, top: legendHeight + 10, bottom: 30, containLabel: true },
      legend: { top: 0, left: 0, orient: 'vertical', itemGap: 6 },
      xAxis: { type: 'category', data: days },
      yAxis: { type: 'value', axisLabel: { formatter: (v) => count(v) } },
      tooltip: {
        ...baseOptions().tooltip,
        trigger: 'axis',
        axisPointer: { type: 'shadow' },
        formatter: (items) => [escapeHtml(items[0]?.name ?? ''), ...items.filter((i) => i.value).map((i) => `${escapeHtml(i.seriesName)}: ${count(i.value)}`)].join('<br>'),
      },
      series: names.map((name) => ({ type: 'bar', stack: 'reasons', name, data: days.map((day) => sums.get(`${name}|${day}`) ?? 0), barMaxWidth: 48 })),
    },
    { notMerge: true },
  );
  panel.setTable(
    {
      columns: [{ label: t('day'), text: (row) => row.day }, ...(decl.columns ?? [])],
      rows: rows.map((row, index) => ({ data: row, api: answer.url, path: `rows.${index}`, suppressed: false })),
    },
    answer,
  );
  // The status answers carry no versions; the page's freshness lookup names the table's.
  const version = context.freshness?.tables?.['quarantine'];
  panel.setSource(version == null ? null : { table_versions: { quarantine: version } }, context.words);
  return rows.length ? 'ready' : 'empty';
}
