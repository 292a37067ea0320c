// The ingest runs, newest first: records read, accepted and quarantined per run.

import { baseOptions, chartIn, PALETTE } from '../charts.js';
import { count, dateTime } from '../format.js';
import { t } from '../i18n.js';

const MAX_RUNS = 20;

export async function load(panel, context) {
  const url = panel.url(context);
  return { url, ...(await panel.get(url)) };
}

export function draw(panel, answer, context) {
  const decl = panel.declaration;
  const rows = answer.body.rows ?? [];
  const recent = rows.slice(0, MAX_RUNS);
  const labels = recent.map((row) => `${row.source} · ${dateTime(row.started_at)}`);
  const chart = chartIn(panel.chartBox(panel.title.textContent, Math.max(160, recent.length * 28 + 70)));
  chart.setOption(
    {
      ...baseOptions(),
      grid: { left: 8, right: 24, top: 30, bottom: 24, containLabel: true },
      legend: { top: 0 },
      xAxis: { type: 'value', axisLabel: { formatter: (v) => count(v) } },
      yAxis: { type: 'category', data: labels, inverse: true, axisLabel: { interval: 0 } },
      tooltip: { ...baseOptions().tooltip, trigger: 'axis', axisPointer: { type: 'shadow' } },
      series: [
        { type: 'bar', stack: 'read', name: t('accepted'), data: recent.map((row) => row.accepted), color: PALETTE[2], barMaxWidth: 18 },
        { type: 'bar', stack: 'read', name: t('quarantined'), data: recent.map((row) => row.quarantined), color: PALETTE[1], barMaxWidth: 18 },
      ],
    },
    { notMerge: true },
  );
  panel.setTable(
    {
      columns: [{ label: t('run'), text: (row) => row.run_id }, ...(decl.columns ?? [])],
      rows: rows.map((row, index) => ({ data: row, api: answer.url, path: `rows.${index}`, suppressed: false })),
    },
    answer,
  );
  // The status answers carry no versions; the page's freshness lookup names the table's.
  const version = context.freshness?.tables?.['ingest_runs'];
  panel.setSource(version == null ? null : { table_versions: { ingest_runs: version } }, context.words);
  return rows.length ? 'ready' : 'empty';
}
