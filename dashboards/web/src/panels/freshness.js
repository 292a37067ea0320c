// How fresh and complete the figures are: the last ingest, the newest dose, the table version
// every answer is computed from, and how far behind the registry the warehouse is.

import { count, date, dateTime } from '../format.js';
import { t } from '../i18n.js';

export async function load(panel, context) {
  const url = panel.url(context);
  return { url, ...(await panel.get(url)) };
}

export function draw(panel, answer, context) {
  const body = answer.body;
  const registry = body.registry
    ? t('registry_lag_value', { rows: count(body.registry.lag_rows), seconds: count(body.registry.lag_seconds) })
    : t('registry_none');
  const facts = [
    [t('last_ingest'), dateTime(body.last_ingest)],
    [t('data_until'), date(body.data_until)],
    [t('table_version'), body.table_version == null ? '—' : `v${body.table_version}`],
    [t('registry_lag'), registry],
  ];
  const list = document.createElement('dl');
  list.className = 'facts';
  for (const [name, value] of facts) {
    const dt = document.createElement('dt');
    dt.textContent = name;
    const dd = document.createElement('dd');
    dd.textContent = value;
    list.append(dt, dd);
  }
  panel.body.replaceChildren(list);
  panel.setTable({
    columns: [
      { label: t('tables'), text: () => t('national') },
      { label: t('last_ingest'), field: 'last_ingest', format: 'datetime' },
      { label: t('data_until'), field: 'data_until', format: 'date' },
      { label: t('table_version'), field: 'table_version', format: 'count' },
      { label: t('registry_lag'), field: 'registry.lag_rows', format: 'count' },
      ...Object.keys(body.tables ?? {}).map((table) => ({ label: `${table} (${t('version')})`, field: `tables.${table}`, format: 'count' })),
    ],
    rows: [{ data: body, api: answer.url, path: '', suppressed: false }],
  });
  panel.setSource({ table_versions: body.tables }, context.words);
  return 'ready';
}
