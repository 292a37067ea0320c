// A panel that is its table: the declared columns of one answer's rows, with the answer's
// explanation (when it has one) above, and CSV and JSON downloads.

import { t } from '../i18n.js';
import { groupLabel } from './common.js';

export async function load(panel, context) {
  const url = panel.url(context);
  return { url, ...(await panel.get(url)) };
}

export function draw(panel, answer, context) {
  const decl = panel.declaration;
  const body = answer.body;
  const rows = body.rows ?? [];
  panel.details.open = true;
  const parts = [];
  if (body.explanation) {
    const p = document.createElement('p');
    p.className = 'explanation';
    p.textContent = `${t('explanation')}: ${body.explanation}`;
    parts.push(p);
  }
  if (!rows.length && decl.empty) {
    const p = document.createElement('p');
    p.textContent = t(decl.empty);
    parts.push(p);
  }
  panel.body.replaceChildren(...parts);
  panel.setTable(
    {
      columns: [{ label: t('group'), text: (row) => groupLabel(row, body.by) }, ...(decl.columns ?? [])],
      rows: rows.map((row, index) => ({ data: row, api: answer.url, path: `rows.${index}`, suppressed: row.suppressed === true, threshold: body.suppression_threshold })),
    },
    answer,
  );
  panel.setSource(body, context.words);
  return 'ready';
}
