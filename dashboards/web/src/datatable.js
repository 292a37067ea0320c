// The data table beside every chart: the accessible alternative to the picture, and the
// place where tests read what is shown. Each row names the API answer it comes from
// (data-api, data-path) and each figure its field and raw value (data-field, data-value).

import { band, byFormat } from './format.js';
import { lookup } from './declared.js';
import { pick, t } from './i18n.js';

/**
 * A table of `rows` under `columns`.
 * columns: [{label, field | fields | text(row), format}]; `field` is a dotted path into the
 * row's data, `fields` two paths shown as an interval (format `band`: a withheld cell's band,
 * "85–100%"), `text` a label computed from the row.
 * rows: [{data, api, path, suppressed, threshold}].
 */
export function dataTable({ caption, columns, rows }) {
  const table = document.createElement('table');
  table.className = 'data-table';
  const captionElement = table.createCaption();
  captionElement.textContent = caption;
  const head = table.createTHead().insertRow();
  for (const column of columns) {
    const th = document.createElement('th');
    th.scope = 'col';
    th.textContent = typeof column.label === 'string' ? column.label : pick(column.label);
    if (column.format && column.format !== 'text') th.className = 'num';
    head.append(th);
  }
  const body = table.createTBody();
  for (const row of rows) {
    const tr = body.insertRow();
    if (row.api) tr.dataset.api = row.api;
    if (row.path != null) tr.dataset.path = row.path;
    tr.dataset.suppressed = row.suppressed ? 'true' : 'false';
    if (row.suppressed) tr.className = 'is-suppressed';
    columns.forEach((column, index) => {
      const cell = document.createElement(index === 0 ? 'th' : 'td');
      if (index === 0) cell.scope = 'row';
      fillCell(cell, column, row);
      tr.append(cell);
    });
  }
  return table;
}

function fillCell(cell, column, row) {
  if (column.text) {
    cell.textContent = column.text(row.data);
    return;
  }
  const fields = column.fields ?? [column.field];
  const values = fields.map((field) => lookup(row.data, field));
  cell.dataset.field = fields.join(',');
  cell.dataset.value = JSON.stringify(fields.length === 1 ? values[0] ?? null : values.map((v) => v ?? null));
  cell.dataset.format = column.format ?? 'text';
  if (column.format && column.format !== 'text') cell.className = 'num';
  if (row.suppressed && values.every((value) => value == null)) {
    cell.textContent = t('suppressed', { n: row.threshold ?? '?' });
    return;
  }
  if (fields.length === 2 && column.format === 'band') {
    // A withheld cell's published band ("85–100%"): the only figure a withheld row may show.
    cell.textContent = values.some((value) => value == null) ? '—' : band(values[0], values[1]);
    return;
  }
  if (fields.length === 2) {
    // A one-sided interval (e.g. a VE bound when no vaccinated case was seen) keeps its
    // known end and marks the open one with a dash; two unknown ends are one dash.
    cell.textContent = values.every((value) => value == null)
      ? '—'
      : t('ci_range', { low: byFormat(column.format, values[0]), high: byFormat(column.format, values[1]) });
    return;
  }
  const value = values[0];
  if (Array.isArray(value)) {
    cell.textContent = value.map((item) => (column.format === 'flags' ? flagText(item) : String(item))).join('; ');
    return;
  }
  cell.textContent = column.format === 'flags' ? flagText(value) : byFormat(column.format, value);
}

function flagText(flags) {
  if (flags == null) return '';
  return String(flags)
    .split(';')
    .filter(Boolean)
    .map((flag) => {
      const key = `flag_${flag}`;
      const text = t(key);
      return text === key ? flag : text;
    })
    .join('; ');
}
