// The communes whose published coverage is below the target, lowest first, with their
// intervals; withheld communes are counted, never listed with a figure — except those whose
// published band lies wholly below the target, which are named with their band.

import { baseOptions, chartIn, TARGET_COLOUR } from '../charts.js';
import { count, percent } from '../format.js';
import { t } from '../i18n.js';
import { bandText, cantonOf, escapeHtml, hasBand, valueWithInterval } from './common.js';

export async function load(panel, context) {
  const url = panel.url(context);
  return { url, ...(await panel.get(url)) };
}

export function draw(panel, answer, context) {
  const decl = panel.declaration;
  const body = answer.body;
  const target = decl.target ?? context.target;
  const all = (body.rows ?? []).map((row, index) => ({ row, index }));
  const below = all
    .filter(({ row }) => !row.suppressed && row.coverage != null && row.coverage < target && row.commune != null)
    .sort((a, b) => a.row.coverage - b.row.coverage || a.row.commune.localeCompare(b.row.commune));
  const suppressedCount = all.filter(({ row }) => row.suppressed).length;
  // A band is "below" only when its upper limit is at or under the target (it excludes it).
  const bandedBelow = all
    .filter(({ row }) => hasBand(row) && row.band_high <= target && row.commune != null)
    .sort((a, b) => a.row.band_high - b.row.band_high || a.row.commune.localeCompare(b.row.commune));

  const messages = document.createElement('div');
  messages.className = 'panel__messages';
  if (!below.length) {
    const p = document.createElement('p');
    p.textContent = t('none_below_target');
    messages.append(p);
  }
  if (suppressedCount) {
    const p = document.createElement('p');
    p.className = 'suppressed-note';
    p.textContent = t('communes_suppressed', { n: suppressedCount });
    messages.append(p);
  }
  if (bandedBelow.length) {
    const p = document.createElement('p');
    p.className = 'suppressed-note';
    p.textContent = t('communes_band_below', { n: bandedBelow.length, list: bandedBelow.map(({ row }) => `${row.commune} (${bandText(row)})`).join(', ') });
    messages.append(p);
  }
  panel.body.querySelector('.panel__messages')?.remove();
  panel.body.prepend(messages);

  const box = panel.chartBox(panel.title.textContent, Math.max(120, below.length * 24 + 70));
  box.hidden = !below.length;
  if (below.length) {
    const chart = chartIn(box);
    chart.setOption(
      {
        ...baseOptions(),
        grid: { left: 8, right: 24, top: 28, bottom: 30, containLabel: true },
        xAxis: { type: 'value', min: 0, max: 100, axisLabel: { formatter: (v) => `${v}%` } },
        yAxis: { type: 'category', inverse: true, data: below.map(({ row }) => row.commune), axisLabel: { interval: 0 } },
        tooltip: {
          ...baseOptions().tooltip,
          trigger: 'axis',
          axisPointer: { type: 'shadow' },
          formatter: (items) => {
            const entry = below[items[0]?.dataIndex];
            if (!entry) return '';
            const { row } = entry;
            return `${escapeHtml(row.commune)} (${escapeHtml(cantonOf(row, context.geography))})<br>${escapeHtml(valueWithInterval(row.coverage, row.ci_low, row.ci_high, false, body))}<br>${count(row.numerator)} / ${count(row.denominator)}`;
          },
        },
        series: [
          {
            type: 'bar',
            name: t('coverage'),
            data: below.map(({ row }) => row.coverage * 100),
            itemStyle: { color: '#b35806' },
            barMaxWidth: 16,
            markLine: {
              silent: true,
              symbol: 'none',
              lineStyle: { color: TARGET_COLOUR, type: 'dashed', width: 2 },
              label: { formatter: t('target_line', { p: percent(target, 0) }), color: TARGET_COLOUR, position: 'start' },
              data: [{ xAxis: target * 100 }],
            },
          },
        ],
      },
      { notMerge: true },
    );
  }
  panel.setTable(
    {
      columns: [
        { label: t('commune'), text: (row) => row.commune },
        { label: t('canton'), text: (row) => cantonOf(row, context.geography) },
        ...(decl.columns ?? []),
      ],
      rows: [...below, ...bandedBelow].map(({ row, index }) => ({ data: row, api: answer.url, path: `rows.${index}`, suppressed: row.suppressed === true, threshold: body.suppression_threshold })),
    },
    answer,
  );
  panel.setSource(body, context.words);
  return 'ready';
}
