// Cumulative coverage by age in months for one birth cohort, with its 95% band, the schedule
// age and the indicator's age marked, and the target.

import { baseOptions, chartIn, PALETTE, TARGET_COLOUR } from '../charts.js';
import { percent } from '../format.js';
import { t } from '../i18n.js';
import { escapeHtml, hatchedBand, suppressedText, valueWithInterval } from './common.js';

export async function load(panel, context) {
  const url = panel.url(context);
  return { url, ...(await panel.get(url)) };
}

export function draw(panel, answer, context) {
  const decl = panel.declaration;
  const body = answer.body;
  const rows = body.rows ?? [];
  const ages = rows.map((row) => String(row.age_months));
  const pct = (v) => (v == null ? null : v * 100);
  const value = rows.map((row) => (row.suppressed ? null : pct(row.coverage)));
  const low = rows.map((row) => (row.suppressed ? null : pct(row.ci_low)));
  const width = rows.map((row) => (row.suppressed || row.ci_low == null ? null : pct(row.ci_high) - pct(row.ci_low)));
  const target = decl.target ?? context.target;
  const axisMax = Math.max(100, ...rows.map((row) => Math.ceil(pct(row.ci_high ?? row.coverage) ?? 0)));
  const marks = [];
  if (body.schedule_age_months != null) marks.push({ xAxis: String(body.schedule_age_months), label: { formatter: t('schedule_age') } });
  if (body.age_months != null) marks.push({ xAxis: String(body.age_months), label: { formatter: t('indicator_age') } });

  const chart = chartIn(panel.chartBox(panel.title.textContent));
  chart.setOption(
    {
      ...baseOptions(),
      grid: { left: 8, right: 24, top: 28, bottom: 36, containLabel: true },
      xAxis: { type: 'category', data: ages, name: t('curve_age_axis'), nameLocation: 'middle', nameGap: 24, boundaryGap: false },
      yAxis: { type: 'value', min: 0, max: axisMax, axisLabel: { formatter: (v) => `${v}%` } },
      tooltip: {
        ...baseOptions().tooltip,
        trigger: 'axis',
        formatter: (items) => {
          const row = rows[items[0]?.dataIndex];
          if (!row) return '';
          const text = valueWithInterval(row.coverage, row.ci_low, row.ci_high, row.suppressed, body);
          return `${escapeHtml(t('months', { m: row.age_months }))}<br>${escapeHtml(text)}`;
        },
      },
      series: [
        { type: 'line', name: 'ci-base', data: low, stack: 'ci', lineStyle: { opacity: 0 }, symbol: 'none', silent: true, tooltip: { show: false } },
        { type: 'line', name: t('ci'), data: width, stack: 'ci', lineStyle: { opacity: 0 }, areaStyle: { color: PALETTE[0], opacity: 0.18 }, symbol: 'none', silent: true },
        {
          type: 'line',
          name: t('coverage'),
          data: value,
          lineStyle: { width: 2.5, color: PALETTE[0] },
          itemStyle: { color: PALETTE[0] },
          symbolSize: 5,
          markLine: {
            silent: true,
            symbol: 'none',
            lineStyle: { color: '#4b5563', type: 'dotted' },
            label: { position: 'insideEndTop', color: '#374151' },
            data: [...marks, ...(target == null ? [] : [{ yAxis: target * 100, lineStyle: { color: TARGET_COLOUR, type: 'dashed', width: 2 }, label: { formatter: t('target_line', { p: percent(target, 0) }), color: TARGET_COLOUR } }])],
          },
        },
        {
          type: 'custom',
          name: suppressedText(body),
          renderItem: (params, api) => {
            const [x] = api.coord([api.value(0), 0]);
            const half = Math.max(3, api.size([1, 0])[0] / 2);
            const grid = params.coordSys;
            return hatchedBand(x - half, grid.y, x + half, grid.y + grid.height, '');
          },
          encode: { x: 0, y: 1 },
          data: rows.map((row, index) => (row.suppressed ? [index, 0] : null)).filter(Boolean),
          z: 1,
        },
      ],
    },
    { notMerge: true },
  );
  panel.setTable(
    {
      columns: [{ label: t('age_months'), text: (row) => String(row.age_months) }, ...(decl.columns ?? [])],
      rows: rows.map((row, index) => ({ data: row, api: answer.url, path: `rows.${index}`, suppressed: row.suppressed === true, threshold: body.suppression_threshold })),
    },
    answer,
  );
  panel.setSource(body, context.words);
  return rows.length ? 'ready' : 'empty';
}
