// Cases per 100,000 person-years by month among the vaccinated and the unvaccinated, for the
// age band chosen on the page. Months whose case counts are withheld are hatched.

import { baseOptions, chartIn, PALETTE } from '../charts.js';
import { decimal } from '../format.js';
import { t } from '../i18n.js';
import { escapeHtml, hatchedBand, suppressedText } from './common.js';

export async function load(panel, context) {
  const url = panel.url(context);
  return { url, ...(await panel.get(url)) };
}

export function draw(panel, answer, context) {
  const decl = panel.declaration;
  const body = answer.body;
  const band = context.band;
  const rows = (body.rows ?? []).map((row, index) => ({ row, index })).filter(({ row }) => band == null || row.age_band === band);
  const months = rows.map(({ row }) => row.month);
  const rate = (field) => rows.map(({ row }) => (row.suppressed ? null : row[field]));

  const chart = chartIn(panel.chartBox(panel.title.textContent));
  chart.setOption(
    {
      ...baseOptions(),
      grid: { left: 8, right: 24, top: 36, bottom: 30, containLabel: true },
      legend: { top: 0, data: [t('unvaccinated'), t('vaccinated'), suppressedText(body)] },
      xAxis: { type: 'category', data: months },
      yAxis: { type: 'value', min: 0, name: body.rate_unit ?? '', nameTextStyle: { align: 'left' } },
      tooltip: {
        ...baseOptions().tooltip,
        trigger: 'axis',
        formatter: (items) => {
          const entry = rows[items[0]?.dataIndex];
          if (!entry) return '';
          const { row } = entry;
          if (row.suppressed) return `${escapeHtml(row.month)}<br>${escapeHtml(suppressedText(body))}`;
          return `${escapeHtml(row.month)}<br>${escapeHtml(t('unvaccinated'))}: ${decimal(row.rate_unvaccinated)}<br>${escapeHtml(t('vaccinated'))}: ${decimal(row.rate_vaccinated)}`;
        },
      },
      series: [
        { type: 'line', name: t('unvaccinated'), data: rate('rate_unvaccinated'), color: PALETTE[1], lineStyle: { width: 2.5 }, symbol: 'circle', symbolSize: 7, connectNulls: false },
        { type: 'line', name: t('vaccinated'), data: rate('rate_vaccinated'), color: PALETTE[0], lineStyle: { width: 2.5, type: 'dashed' }, symbol: 'rect', symbolSize: 7, connectNulls: false },
        {
          type: 'custom',
          name: suppressedText(body),
          renderItem: (params, api) => {
            const [x] = api.coord([api.value(0), 0]);
            const half = api.size([1, 0])[0] * 0.4;
            const grid = params.coordSys;
            return hatchedBand(x - half, grid.y, x + half, grid.y + grid.height, '');
          },
          encode: { x: 0, y: 1 },
          itemStyle: { color: '#9ca3af' },
          data: rows.map(({ row }, i) => (row.suppressed ? [i, 0] : null)).filter(Boolean),
          z: 1,
        },
      ],
    },
    { notMerge: true },
  );
  panel.setTable(
    {
      columns: [{ label: t('month'), text: (row) => `${row.month} (${row.age_band})` }, ...(decl.columns ?? [])],
      rows: rows.map(({ row, index }) => ({ data: row, api: answer.url, path: `rows.${index}`, suppressed: row.suppressed === true, threshold: body.suppression_threshold })),
    },
    answer,
  );
  panel.setSource(body, context.words);
  return rows.length ? 'ready' : 'empty';
}
