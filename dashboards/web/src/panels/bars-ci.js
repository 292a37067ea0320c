// Horizontal bars with 95% intervals, one per group (commune, canton, sex, age band), against
// the target; or, in counts mode, the counts side by side. Withheld groups are hatched bands
// saying "suppressed (< N)"; one with a published band (band_low, band_high) is hatched over
// that band only and says it ("85–100%"). Declared fields pick the measure (coverage,
// dropout, timeliness).

import { baseOptions, chartIn, SUPPRESSED_DECAL, TARGET_COLOUR } from '../charts.js';
import { count, percent } from '../format.js';
import { lookup } from '../declared.js';
import { pick, t } from '../i18n.js';
import { bandText, escapeHtml, groupLabel, hasBand, suppressedText, valueWithInterval, withheldText } from './common.js';

const DEFAULT_FIELDS = { value: 'coverage', low: 'ci_low', high: 'ci_high', counts: ['numerator', 'denominator'] };

export async function load(panel, context) {
  const url = panel.url(context);
  const answer = await panel.get(url);
  return { url, ...answer };
}

export function draw(panel, answer, context) {
  const decl = panel.declaration;
  const body = answer.body;
  const fields = { ...DEFAULT_FIELDS, ...decl.fields };
  const rows = (body.rows ?? []).map((row, index) => ({ row, index, label: groupLabel(row, body.by) }));
  const countsMode = context.measure === 'counts' && fields.counts;
  const categories = rows.map((r) => r.label);
  const height = Math.max(140, rows.length * 24 + 80);
  const box = panel.chartBox(panel.title.textContent, height);
  const chart = chartIn(box);
  const target = decl.target ?? null;

  const valueOf = (r, field) => lookup(r.row, field);
  let series;
  let axisMax;
  if (countsMode) {
    const countLabels = (decl.count_labels ?? []).map((label) => pick(label));
    series = fields.counts.map((field, i) => ({
      type: 'bar',
      name: countLabels[i] ?? field,
      data: rows.map((r) => (r.row.suppressed ? null : valueOf(r, field))),
      barMaxWidth: 10,
    }));
    axisMax = Math.max(1, ...rows.flatMap((r) => fields.counts.map((f) => valueOf(r, f) ?? 0)));
  } else {
    const highs = rows.map((r) => Math.max(valueOf(r, fields.value) ?? 0, valueOf(r, fields.high) ?? 0));
    axisMax = Math.max(100, Math.ceil(Math.max(0, ...highs) * 10) * 10);
    series = [
      {
        type: 'bar',
        name: pick(decl.value_label) || t('coverage'),
        data: rows.map((r) => (r.row.suppressed || valueOf(r, fields.value) == null ? null : valueOf(r, fields.value) * 100)),
        barMaxWidth: 16,
        markLine: target == null ? undefined : {
          silent: true,
          symbol: 'none',
          lineStyle: { color: TARGET_COLOUR, type: 'dashed', width: 2 },
          // With the scale on top the note names the line; its label would cover the scale.
          label: { show: rows.length <= 12, formatter: t('target_line', { p: percent(target, 0) }), color: TARGET_COLOUR, position: 'start' },
          data: [{ xAxis: target * 100 }],
        },
      },
      {
        type: 'custom',
        name: t('ci'),
        renderItem: (params, api) => {
          const low = api.value(1);
          const high = api.value(2);
          if (Number.isNaN(low) || Number.isNaN(high)) return null;
          const [x0, y] = api.coord([low, api.value(0)]);
          const [x1] = api.coord([high, api.value(0)]);
          const cap = 5;
          const style = { stroke: '#111827', lineWidth: 1.5 };
          return {
            type: 'group',
            children: [
              { type: 'line', shape: { x1: x0, y1: y, x2: x1, y2: y }, style },
              { type: 'line', shape: { x1: x0, y1: y - cap, x2: x0, y2: y + cap }, style },
              { type: 'line', shape: { x1: x1, y1: y - cap, x2: x1, y2: y + cap }, style },
            ],
          };
        },
        encode: { x: [1, 2], y: 0 },
        data: rows
          .filter((r) => !r.row.suppressed && valueOf(r, fields.low) != null && valueOf(r, fields.high) != null)
          .map((r) => [r.index, valueOf(r, fields.low) * 100, valueOf(r, fields.high) * 100]),
        z: 3,
      },
    ];
  }
  // Withheld groups: a hatched band across the whole axis saying "suppressed (< N)", or, for
  // a group with a published band, across that band only, saying it. It is a bar (ECharts
  // draws its hatching as one pattern, cheap for a hundred communes), stacked on an unseen
  // bar reaching the band's lower limit, overlaid on the value bars' slot, never a value.
  const banded = (r) => !countsMode && hasBand(r.row);
  if (!countsMode) series.push({
    type: 'bar',
    name: `${suppressedText(body)} `,
    stack: 'withheld',
    data: rows.map((r) => (banded(r) ? r.row.band_low * 100 : null)),
    barMaxWidth: 16,
    silent: true,
    z: 1,
    itemStyle: { color: 'transparent' },
  });
  series.push({
    type: 'bar',
    name: suppressedText(body),
    stack: 'withheld',
    data: rows.map((r) => {
      if (!r.row.suppressed || countsMode) return null;
      if (!banded(r)) return axisMax;
      // The band's text sits left of the hatching (inside it when the band starts at 0).
      const position = r.row.band_low > 0 ? 'left' : 'insideLeft';
      return { value: (r.row.band_high - r.row.band_low) * 100, label: { position, formatter: bandText(r.row) } };
    }),
    barGap: '-100%',
    barMaxWidth: 16,
    silent: true,
    z: 1,
    itemStyle: { color: '#f3f4f6', borderColor: '#6b7280', borderWidth: 1, decal: SUPPRESSED_DECAL },
    label: { show: true, position: 'insideLeft', formatter: suppressedText(body), color: '#1f2933', backgroundColor: '#f3f4f6', padding: [1, 3] },
  });
  if (countsMode) {
    series.push({
      type: 'custom',
      name: suppressedText(body),
      renderItem: (params, api) => {
        const index = api.value(0);
        const [x, y] = api.coord([0, index]);
        return { type: 'text', style: { x: x + 4, y, text: suppressedText(body), fill: '#1f2933', verticalAlign: 'middle', font: 'italic 12px system-ui, sans-serif' } };
      },
      encode: { y: 0, x: 1 },
      data: rows.filter((r) => r.row.suppressed).map((r) => [r.index, 0]),
    });
  }

  chart.setOption(
    {
      ...baseOptions(),
      // Many groups scroll inside the panel: the scale then sits on top, always in view.
      grid: { left: 8, right: 24, top: countsMode ? 36 : 28, bottom: 36, containLabel: true },
      legend: countsMode ? { top: 0 } : undefined,
      xAxis: {
        type: 'value',
        position: rows.length > 12 ? 'top' : 'bottom',
        min: 0,
        max: countsMode ? undefined : axisMax,
        axisLabel: { formatter: countsMode ? (v) => count(v) : (v) => `${v}%` },
        name: countsMode || rows.length > 12 ? '' : pick(decl.value_label) || t('coverage'),
        nameLocation: 'middle',
        nameGap: 24,
      },
      yAxis: { type: 'category', data: categories, inverse: true, axisLabel: { interval: 0 } },
      tooltip: {
        ...baseOptions().tooltip,
        trigger: 'axis',
        axisPointer: { type: 'shadow' },
        formatter: (items) => {
          const r = rows[items[0]?.dataIndex ?? 0] ?? rows.find((x) => x.label === items[0]?.name);
          if (!r) return '';
          if (r.row.suppressed) return `${escapeHtml(r.label)}<br>${escapeHtml(withheldText(r.row, body))}`;
          const main = valueWithInterval(valueOf(r, fields.value), valueOf(r, fields.low), valueOf(r, fields.high), false, body);
          const counts = (fields.counts ?? []).map((f) => count(valueOf(r, f))).join(' / ');
          return `${escapeHtml(r.label)}<br>${escapeHtml(main)}<br>${escapeHtml(counts)}`;
        },
      },
      series,
    },
    { notMerge: true },
  );

  panel.setTable(
    {
      columns: [{ label: t('group'), text: (row) => groupLabel(row, body.by) }, ...(decl.columns ?? [])],
      rows: rows.map((r) => ({
        data: r.row,
        api: answer.url,
        path: `rows.${r.index}`,
        suppressed: r.row.suppressed === true,
        threshold: body.suppression_threshold,
      })),
    },
    answer,
  );
  panel.setSource(body, context.words);
  return rows.length ? 'ready' : 'empty';
}
