// Forest plot of vaccine effectiveness: one line per age band with its 95% interval, then the
// Mantel–Haenszel (age-adjusted) overall estimate and the crude one beside it. Withheld
// estimates are hatched and labelled; estimates that cannot be computed say why.

import { baseOptions, chartIn, PALETTE } from '../charts.js';
import { percent } from '../format.js';
import { t } from '../i18n.js';
import { escapeHtml, hatchedBand, suppressedText } from './common.js';

export async function load(panel, context) {
  const url = panel.url(context);
  return { url, ...(await panel.get(url)) };
}

/** The estimates in plot order, each with where it sits in the answer. */
function estimates(body) {
  const list = (body.rows ?? []).map((row, index) => ({ row, path: `rows.${index}`, label: row.age_band, kind: 'band' }));
  if (body.overall) list.push({ row: body.overall, path: 'overall', label: t('mh_overall'), kind: 'overall' });
  if (body.crude) list.push({ row: body.crude, path: 'crude', label: t('crude'), kind: 'crude' });
  return list;
}

function describe(entry, body) {
  const { row } = entry;
  if (row.suppressed) return suppressedText(body);
  if (row.ve == null) return row.reason ?? t('no_value');
  const interval = row.ci_low == null ? '' : ` (${t('ci')} ${t('ci_range', { low: percent(row.ci_low), high: percent(row.ci_high) })})`;
  return `${t('ve')} ${percent(row.ve)}${interval}`;
}

export function draw(panel, answer, context) {
  const decl = panel.declaration;
  const body = answer.body;
  const list = estimates(body);
  const pct = (v) => (v == null ? null : v * 100);
  const lows = list.map((e) => pct(e.row.ci_low)).filter((v) => v != null);
  const axisMin = Math.max(-100, Math.floor(Math.min(0, ...lows) / 25) * 25);
  const axisMax = 100;
  const clip = (v) => Math.min(axisMax, Math.max(axisMin, v));
  const colours = { band: PALETTE[0], overall: PALETTE[1], crude: PALETTE[6] };
  const height = Math.max(200, list.length * 34 + 70);

  const chart = chartIn(panel.chartBox(panel.title.textContent, height));
  chart.setOption(
    {
      ...baseOptions(),
      grid: { left: 8, right: 24, top: 12, bottom: 40, containLabel: true },
      xAxis: { type: 'value', min: axisMin, max: axisMax, interval: 25, name: t('ve_axis'), nameLocation: 'middle', nameGap: 26, axisLabel: { formatter: (v) => `${v}%` } },
      yAxis: { type: 'category', data: list.map((e) => e.label), inverse: true, axisLabel: { interval: 0, fontWeight: 'normal' } },
      tooltip: {
        ...baseOptions().tooltip,
        trigger: 'axis',
        axisPointer: { type: 'shadow' },
        formatter: (items) => {
          const entry = list[items[0]?.dataIndex];
          return entry ? `${escapeHtml(entry.label)}<br>${escapeHtml(describe(entry, body))}` : '';
        },
      },
      series: [
        {
          type: 'custom',
          name: t('ve'),
          renderItem: (params, api) => {
            const entry = list[api.value(0)];
            const { row } = entry;
            const [, y] = api.coord([0, api.value(0)]);
            const band = api.size([0, 1])[1] * 0.6;
            const [left] = api.coord([axisMin, 0]);
            const [right] = api.coord([axisMax, 0]);
            if (row.suppressed) return hatchedBand(left, y - band / 2, right, y + band / 2, suppressedText(body));
            if (row.ve == null) {
              return { type: 'text', style: { x: left + 6, y, text: `${t('no_value')}: ${String(row.reason ?? '').split(':')[0]}`, fill: '#374151', verticalAlign: 'middle', font: 'italic 12px system-ui, sans-serif' } };
            }
            const colour = colours[entry.kind];
            const [x] = api.coord([clip(pct(row.ve)), 0]);
            const children = [];
            if (row.ci_low != null && row.ci_high != null) {
              const [x0] = api.coord([clip(pct(row.ci_low)), 0]);
              const [x1] = api.coord([clip(pct(row.ci_high)), 0]);
              const style = { stroke: colour, lineWidth: 2 };
              children.push({ type: 'line', shape: { x1: x0, y1: y, x2: x1, y2: y }, style });
              if (pct(row.ci_low) >= axisMin) children.push({ type: 'line', shape: { x1: x0, y1: y - 5, x2: x0, y2: y + 5 }, style });
              if (pct(row.ci_high) <= axisMax) children.push({ type: 'line', shape: { x1: x1, y1: y - 5, x2: x1, y2: y + 5 }, style });
            }
            const size = entry.kind === 'band' ? 6 : 8;
            children.push(
              entry.kind === 'band'
                ? { type: 'rect', shape: { x: x - size, y: y - size, width: size * 2, height: size * 2 }, style: { fill: colour } }
                : { type: 'polygon', shape: { points: [[x - size - 3, y], [x, y - size], [x + size + 3, y], [x, y + size]] }, style: { fill: colour } },
            );
            return { type: 'group', children };
          },
          encode: { y: 0, x: 1 },
          data: list.map((e, index) => [index, 0]),
          markLine: {
            silent: true,
            symbol: 'none',
            lineStyle: { color: '#374151', type: 'solid', width: 1 },
            label: { show: false },
            data: [{ xAxis: 0 }],
          },
        },
      ],
    },
    { notMerge: true },
  );

  // The plain-language summary beside the plot.
  let summary = panel.body.querySelector('.ve-summary');
  if (!summary) {
    summary = document.createElement('p');
    summary.className = 've-summary';
    panel.body.prepend(summary);
  }
  const overall = body.overall;
  summary.textContent =
    overall && overall.ve != null && !overall.suppressed
      ? t('ve_summary', {
          ve: percent(overall.ve),
          low: percent(overall.ci_low),
          high: percent(overall.ci_high),
          crude: body.crude?.suppressed ? suppressedText(body) : percent(body.crude?.ve),
        })
      : t('ve_summary_withheld', { reason: overall?.suppressed ? suppressedText(body) : overall?.reason ?? t('no_value') });

  panel.setTable(
    {
      columns: [{ label: t('estimate'), text: (row) => row.__label }, ...(decl.columns ?? [])],
      rows: list.map((e) => ({
        data: { ...e.row, __label: e.label },
        api: answer.url,
        path: e.path,
        suppressed: e.row.suppressed === true,
        threshold: body.suppression_threshold,
      })),
    },
    answer,
    list.map((e) => ({ estimate: e.kind === 'band' ? e.row.age_band : e.path, ...e.row })),
  );
  panel.setSource(body, context.words);
  return list.length ? 'ready' : 'empty';
}
