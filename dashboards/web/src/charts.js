// Apache ECharts, with only the chart kinds and components the dashboards use (smaller bundle),
// drawn as SVG. Every chart sits in a role="img" box labelled for screen readers; the data
// table beside it carries the figures.

import * as echarts from 'echarts/core';
import { BarChart, CustomChart, LineChart, ScatterChart } from 'echarts/charts';
import {
  AriaComponent,
  GridComponent,
  LegendComponent,
  MarkAreaComponent,
  MarkLineComponent,
  TooltipComponent,
} from 'echarts/components';
import { CanvasRenderer } from 'echarts/renderers';

echarts.use([
  BarChart,
  CustomChart,
  LineChart,
  ScatterChart,
  AriaComponent,
  GridComponent,
  LegendComponent,
  MarkAreaComponent,
  MarkLineComponent,
  TooltipComponent,
  CanvasRenderer,
]);

/** Series colours: dark enough for 3:1 against white (WCAG non-text contrast). */
export const PALETTE = ['#0b5fa5', '#b8410c', '#047857', '#7e22ce', '#8a5a00', '#be185d', '#475569', '#0e7490'];
export const TARGET_COLOUR = '#111827';
export const TEXT_COLOUR = '#1f2933';
/** Hatching of suppressed cells: diagonal grey lines, no fill colour that could read as a value. */
export const SUPPRESSED_DECAL = {
  symbol: 'rect',
  symbolSize: 1,
  color: 'rgba(55, 65, 81, 0.55)',
  dashArrayX: [1, 0],
  dashArrayY: [2, 4],
  rotation: -Math.PI / 4,
};

const charts = new WeakMap();

/** The ECharts instance drawing into `box` (created on first use, resized with its box). */
export function chartIn(box) {
  let chart = charts.get(box);
  if (!chart) {
    chart = echarts.init(box, null, { renderer: 'canvas' });
    charts.set(box, chart);
    new ResizeObserver(() => chart.resize()).observe(box);
  }
  return chart;
}

/** Options shared by every chart: readable text, no animation (a filter change shows at once). */
export function baseOptions() {
  return {
    animation: false,
    color: PALETTE,
    aria: { enabled: false },
    textStyle: { color: TEXT_COLOUR, fontFamily: 'system-ui, sans-serif', fontSize: 12 },
    tooltip: { confine: true, className: 'chart-tooltip', textStyle: { color: TEXT_COLOUR } },
  };
}
