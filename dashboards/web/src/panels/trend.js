// Coverage across the newest complete birth cohorts, one line per declared indicator.

import { baseOptions, chartIn, TARGET_COLOUR } from '../charts.js';
import { recentCompleteCohorts } from '../cohorts.js';
import { percent } from '../format.js';
import { t } from '../i18n.js';
import { escapeHtml, suppressedText } from './common.js';
import { merged } from './headline.js';

function calls(panel, context) {
  const decl = panel.declaration;
  return decl.series.flatMap((indicator) => {
    const meta = context.catalogue.find((entry) => entry.indicator === indicator);
    return recentCompleteCohorts(meta, context.freshness?.data_until, decl.cohorts ?? 8).map((cohort) => ({
      indicator,
      cohort,
      url: panel.url(context, { item: { indicator, cohort } }),
    }));
  });
}

export function key(panel, context) {
  return calls(panel, context).map((call) => call.url);
}

export async function load(panel, context) {
  const list = calls(panel, context);
  const answers = await Promise.all(list.map((call) => panel.get(call.url)));
  return list.map((call, i) => ({ ...call, ...answers[i] }));
}

export function draw(panel, points, context) {
  const decl = panel.declaration;
  const target = decl.target ?? context.target;
  const cohorts = [...new Set(points.map((p) => p.cohort))].sort();
  const byKey = new Map(points.map((p) => [`${p.indicator}|${p.cohort}`, p]));
  const chart = chartIn(panel.chartBox(panel.title.textContent));
  chart.setOption(
    {
      ...baseOptions(),
      grid: { left: 8, right: 24, top: 36, bottom: 36, containLabel: true },
      legend: { top: 0 },
      xAxis: { type: 'category', data: cohorts, name: t('cohort'), nameLocation: 'middle', nameGap: 24 },
      yAxis: { type: 'value', min: (range) => Math.max(0, Math.floor(Math.min(range.min, target * 100) / 10) * 10), max: (range) => Math.max(100, Math.ceil(range.max)), axisLabel: { formatter: (v) => `${v}%` } },
      tooltip: {
        ...baseOptions().tooltip,
        trigger: 'axis',
        formatter: (items) => {
          const cohort = cohorts[items[0]?.dataIndex];
          const lines = decl.series.map((indicator) => {
            const point = byKey.get(`${indicator}|${cohort}`);
            const row = point?.body.rows?.[0];
            if (!row) return `${indicator}: —`;
            return `${indicator}: ${row.suppressed ? suppressedText(point.body) : percent(row.coverage)}`;
          });
          return [escapeHtml(`${t('cohort')} ${cohort}`), ...lines.map(escapeHtml)].join('<br>');
        },
      },
      series: decl.series.map((indicator, i) => ({
        type: 'line',
        name: indicator,
        symbol: ['circle', 'rect', 'triangle', 'diamond'][i % 4],
        symbolSize: 8,
        lineStyle: { width: 2.5 },
        data: cohorts.map((cohort) => {
          const row = byKey.get(`${indicator}|${cohort}`)?.body.rows?.[0];
          return row && !row.suppressed && row.coverage != null ? row.coverage * 100 : null;
        }),
        markLine:
          i === 0
            ? {
                silent: true,
                symbol: 'none',
                lineStyle: { color: TARGET_COLOUR, type: 'dashed', width: 2 },
                label: { formatter: t('target_line', { p: percent(target, 0) }), color: TARGET_COLOUR, position: 'insideEndTop' },
                data: [{ yAxis: target * 100 }],
              }
            : undefined,
      })),
    },
    { notMerge: true },
  );
  panel.setTable({
    columns: [
      { label: t('indicator'), text: (row) => row.__indicator },
      { label: t('cohort'), text: (row) => String(row.cohort) },
      ...(decl.columns ?? []),
    ],
    rows: points.map((p) => ({
      data: { ...(p.body.rows?.[0] ?? {}), __indicator: p.indicator },
      api: p.url,
      path: 'rows.0',
      suppressed: p.body.rows?.[0]?.suppressed === true,
      threshold: p.body.suppression_threshold,
    })),
  });
  panel.setSource(merged(decl.series.map((indicator) => points.find((p) => p.indicator === indicator)).filter(Boolean)), context.words);
  return points.length ? 'ready' : 'empty';
}
