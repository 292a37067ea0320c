// A schematic tile map of Luxembourg: each canton a block of square tiles, one per commune,
// placed roughly where the canton lies (the declared `layout`: canton → [column, row]).
// Tiles are coloured by coverage class against the target; withheld cells are hatched and
// say "suppressed" with no number, in the tile, its tooltip and the table — unless the API
// gives the cell a published band, which the hatched tile then shows ("85–100%").

import { count, percent } from '../format.js';
import { t } from '../i18n.js';
import { bandText, cantonOf, groupLabel, hasBand, withheldText } from './common.js';

const SVG = 'http://www.w3.org/2000/svg';
const TILE = 58;
const GAP = 3;
const BLOCK_GAP = 14;
const LABEL = 18;

/** Coverage classes, colour-blind safe (purple–orange), each with a text colour of AA contrast. */
function classes(target) {
  return [
    { min: target, fill: '#542788', text: '#ffffff', label: t('legend_ge', { a: percent(target, 0) }) },
    { min: target - 0.05, fill: '#b2abd2', text: '#111111', label: t('legend_range', { a: percent(target - 0.05, 0), b: percent(target, 0) }) },
    { min: target - 0.15, fill: '#fdb863', text: '#111111', label: t('legend_range', { a: percent(target - 0.15, 0), b: percent(target - 0.05, 0) }) },
    { min: -Infinity, fill: '#b35806', text: '#ffffff', label: t('legend_lt', { a: percent(target - 0.15, 0) }) },
  ];
}

/** Cells above 100 % (numerator above the population denominator): teal, AA contrast with white. */
const OVER = { fill: '#01665e', text: '#ffffff' };

function el(name, attributes = {}, text) {
  const node = document.createElementNS(SVG, name);
  for (const [key, value] of Object.entries(attributes)) node.setAttribute(key, String(value));
  if (text != null) node.textContent = text;
  return node;
}

/** Tiles per row of a canton's block: about 3:2 wide, at most 5. */
function columnsFor(communes) {
  return Math.max(2, Math.min(5, Math.ceil(Math.sqrt(communes * 1.5))));
}

/** Pixel boxes of each canton block and of each commune tile. */
export function layoutTiles(cantons, layout) {
  const blocks = cantons.map((entry, order) => {
    const columns = columnsFor(entry.communes.length);
    const rows = Math.ceil(entry.communes.length / columns);
    const place = layout?.[entry.canton] ?? [order % 3, 5 + Math.floor(order / 3)];
    return { ...entry, columns, rows, col: place[0], row: place[1], width: columns * (TILE + GAP) - GAP, height: rows * (TILE + GAP) - GAP + LABEL };
  });
  const colWidth = [];
  const rowHeight = [];
  for (const b of blocks) {
    colWidth[b.col] = Math.max(colWidth[b.col] ?? 0, b.width);
    rowHeight[b.row] = Math.max(rowHeight[b.row] ?? 0, b.height);
  }
  const offset = (sizes, index) => sizes.slice(0, index).reduce((sum, size) => sum + (size ?? 0) + (size ? BLOCK_GAP : 0), 0);
  for (const b of blocks) {
    // Centre each block in its cell of the coarse grid.
    b.x = offset(colWidth, b.col) + ((colWidth[b.col] - b.width) / 2);
    b.y = offset(rowHeight, b.row) + (rowHeight[b.row] - b.height);
    b.tiles = b.communes.map((commune, i) => ({
      commune,
      x: b.x + (i % b.columns) * (TILE + GAP),
      y: b.y + LABEL + Math.floor(i / b.columns) * (TILE + GAP),
    }));
  }
  const width = offset(colWidth, colWidth.length);
  const height = offset(rowHeight, rowHeight.length);
  return { blocks, width, height };
}

export async function load(panel, context) {
  const url = panel.url(context);
  const answer = await panel.get(url);
  return { url, ...answer };
}

function shortName(name) {
  return name.length > 9 ? `${name.slice(0, 8)}…` : name;
}

export function draw(panel, answer, context) {
  const decl = panel.declaration;
  const body = answer.body;
  const byCanton = body.by === 'canton';
  const target = decl.target ?? context.target ?? 0.95;
  const palette = classes(target);
  const countsMode = context.measure === 'counts';
  const cells = new Map((body.rows ?? []).map((row, index) => [byCanton ? row.canton : row.commune, { row, index }]));
  const { blocks, width, height } = layoutTiles(context.geography.cantons, decl.layout);

  const svg = el('svg', { viewBox: `-2 -2 ${width + 4} ${height + 4}`, class: 'tilemap', role: 'img' });
  svg.setAttribute('aria-label', t('chart_label', { title: panel.title.textContent }));
  const defs = el('defs');
  const pattern = el('pattern', { id: `hatch-${decl.id}`, width: 8, height: 8, patternUnits: 'userSpaceOnUse', patternTransform: 'rotate(45)' });
  pattern.append(el('rect', { width: 8, height: 8, fill: '#f3f4f6' }), el('line', { x1: 0, y1: 0, x2: 0, y2: 8, stroke: '#6b7280', 'stroke-width': 2 }));
  defs.append(pattern);
  svg.append(defs);

  const describe = (name, cell) => {
    if (!cell) return `${name}: ${t('no_data')}`;
    const { row } = cell;
    if (row.suppressed) return `${name}: ${withheldText(row, body)}`;
    if (row.coverage == null) return `${name}: ${t('no_value')}`;
    const ci = row.ci_low == null ? '' : ` (${t('ci')} ${t('ci_range', { low: percent(row.ci_low), high: percent(row.ci_high) })})`;
    return `${name}: ${percent(row.coverage)}${ci}, ${count(row.numerator)} / ${count(row.denominator)}`;
  };
  const styleOf = (cell) => {
    if (!cell || (!cell.row.suppressed && cell.row.coverage == null)) return { fill: '#e5e7eb', text: '#1f2933', kind: 'nodata' };
    if (cell.row.suppressed) return { fill: `url(#hatch-${decl.id})`, text: '#111111', kind: hasBand(cell.row) ? 'band' : 'suppressed' };
    // Above 100 %: the population source counts fewer residents than were vaccinated (moves,
    // cross-border children); not "on target", so not the target's colour.
    if (cell.row.coverage > 1) return { fill: OVER.fill, text: OVER.text, kind: 'value' };
    const c = palette.find((p) => cell.row.coverage >= p.min);
    return { fill: c.fill, text: c.text, kind: 'value' };
  };
  /** The tile's figure, named for tests like a table cell (data-field, data-value, data-format). */
  const valueAttributes = (cell) => {
    if (cell && hasBand(cell.row)) {
      return { 'data-field': 'band_low,band_high', 'data-value': JSON.stringify([cell.row.band_low, cell.row.band_high]), 'data-format': 'band' };
    }
    if (!cell || cell.row.suppressed || cell.row.coverage == null) return {};
    return countsMode
      ? { 'data-field': 'numerator,denominator', 'data-value': JSON.stringify([cell.row.numerator, cell.row.denominator]), 'data-format': 'count' }
      : { 'data-field': 'coverage', 'data-value': JSON.stringify(cell.row.coverage), 'data-format': 'percent0' };
  };
  const sourceAttributes = (cell) =>
    cell ? { 'data-api': answer.url, 'data-path': `rows.${cell.index}`, 'data-suppressed': String(cell.row.suppressed === true) } : {};
  const valueText = (cell) => {
    if (!cell || (!cell.row.suppressed && cell.row.coverage == null)) return '—';
    if (hasBand(cell.row)) return bandText(cell.row);
    if (cell.row.suppressed) return t('suppressed_short');
    if (countsMode) return `${count(cell.row.numerator)}/${count(cell.row.denominator)}`;
    return percent(cell.row.coverage, 0);
  };

  for (const block of blocks) {
    const group = el('g', { class: 'tilemap__canton', 'data-canton': block.canton });
    group.append(el('text', { x: block.x, y: block.y + 13, class: 'tilemap__canton-name' }, block.canton));
    if (byCanton) {
      const cell = cells.get(block.canton);
      const style = styleOf(cell);
      const boxHeight = block.rows * (TILE + GAP) - GAP;
      const tile = el('g', { class: 'tilemap__tile', 'data-name': block.canton, 'data-kind': style.kind, ...sourceAttributes(cell) });
      tile.append(el('title', {}, describe(block.canton, cell)));
      tile.append(el('rect', { x: block.x, y: block.y + LABEL, width: block.width, height: boxHeight, fill: style.fill, stroke: '#374151', 'stroke-width': 1, rx: 4 }));
      tile.append(el('text', { x: block.x + block.width / 2, y: block.y + LABEL + boxHeight / 2 + 7, 'text-anchor': 'middle', class: 'tilemap__value tilemap__value--big', fill: style.text, ...valueAttributes(cell), ...(style.kind === 'suppressed' || style.kind === 'band' ? { 'paint-order': 'stroke', stroke: '#f3f4f6', 'stroke-width': 4 } : {}) }, valueText(cell)));
      group.append(tile);
    } else {
      for (const tileBox of block.tiles) {
        const cell = cells.get(tileBox.commune);
        const style = styleOf(cell);
        const tile = el('g', { class: 'tilemap__tile', 'data-name': tileBox.commune, 'data-kind': style.kind, ...sourceAttributes(cell) });
        tile.append(el('title', {}, describe(tileBox.commune, cell)));
        tile.append(el('rect', { x: tileBox.x, y: tileBox.y, width: TILE, height: TILE, fill: style.fill, stroke: '#374151', 'stroke-width': 1, rx: 3 }));
        const halo = style.kind === 'suppressed' || style.kind === 'band' ? { 'paint-order': 'stroke', stroke: '#f3f4f6', 'stroke-width': 3 } : {};
        const valueClass = style.kind === 'band' ? 'tilemap__value tilemap__value--band' : 'tilemap__value';
        tile.append(el('text', { x: tileBox.x + TILE / 2, y: tileBox.y + 20, 'text-anchor': 'middle', class: 'tilemap__name', fill: style.text, ...halo }, shortName(tileBox.commune)));
        tile.append(el('text', { x: tileBox.x + TILE / 2, y: tileBox.y + 42, 'text-anchor': 'middle', class: valueClass, fill: style.text, ...valueAttributes(cell), ...halo }, valueText(cell)));
        group.append(tile);
      }
    }
    svg.append(group);
  }

  const legend = document.createElement('ul');
  legend.className = 'legend';
  const legendItems = [
    ...palette.map((p) => ({ swatch: p.fill, label: p.label })),
    { swatch: OVER.fill, label: t('legend_over') },
    { swatch: 'hatch', label: t('legend_suppressed', { n: body.suppression_threshold ?? '?' }) },
    { swatch: 'hatch', label: t('legend_band') },
    { swatch: '#e5e7eb', label: t('legend_no_data') },
  ];
  for (const item of legendItems) {
    const li = document.createElement('li');
    const swatch = document.createElement('span');
    swatch.className = item.swatch === 'hatch' ? 'swatch swatch--hatch' : 'swatch';
    if (item.swatch !== 'hatch') swatch.style.background = item.swatch;
    swatch.setAttribute('aria-hidden', 'true');
    li.append(swatch, ` ${item.label}`);
    legend.append(li);
  }
  const figure = document.createElement('div');
  figure.className = 'tilemap-wrap';
  figure.append(svg, legend);
  panel.body.replaceChildren(figure);

  panel.setTable(
    {
      columns: [
        { label: byCanton ? t('canton') : t('commune'), text: (row) => groupLabel(row, body.by) },
        ...(byCanton ? [] : [{ label: t('canton'), text: (row) => cantonOf(row, context.geography) }]),
        ...(decl.columns ?? []),
      ],
      rows: (body.rows ?? []).map((row, index) => ({
        data: row,
        api: answer.url,
        path: `rows.${index}`,
        suppressed: row.suppressed === true,
        threshold: body.suppression_threshold,
      })),
    },
    answer,
  );
  panel.setSource(body, context.words);
  return (body.rows ?? []).length ? 'ready' : 'empty';
}

