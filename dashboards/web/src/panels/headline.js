// Headline indicators: one card per declared indicator, its newest complete cohort's national
// coverage with the 95% interval, against the target.

import { cohortLabel, cohortsFor } from '../cohorts.js';
import { count, percent } from '../format.js';
import { t } from '../i18n.js';
import { suppressedText, unique } from './common.js';

function items(panel, context) {
  return panel.declaration.items.map((item) => {
    const meta = context.catalogue.find((entry) => entry.indicator === item.indicator);
    const cohort = item.cohort ?? cohortsFor(meta, context.freshness?.data_until).latestComplete;
    return { ...item, meta, cohort, url: panel.url(context, { item: { ...item, cohort } }) };
  });
}

export function key(panel, context) {
  return items(panel, context).map((item) => item.url);
}

export async function load(panel, context) {
  const list = items(panel, context);
  const answers = await Promise.all(list.map((item) => panel.get(item.url)));
  return list.map((item, i) => ({ ...item, ...answers[i] }));
}

export function draw(panel, cards, context) {
  const target = panel.declaration.target ?? context.target;
  const grid = document.createElement('ul');
  grid.className = 'kpis';
  for (const card of cards) {
    const row = card.body.rows?.[0] ?? {};
    const li = document.createElement('li');
    li.className = 'kpi';
    li.dataset.indicator = card.indicator;
    const reached = !row.suppressed && row.coverage != null && row.coverage >= target;
    const status = row.suppressed || row.coverage == null ? 'unknown' : reached ? 'met' : 'below';
    li.dataset.status = status;
    // The card's figure names its source like a table row does (see datatable.js).
    li.dataset.api = card.url;
    li.dataset.path = 'rows.0';
    li.dataset.suppressed = row.suppressed ? 'true' : 'false';
    const heading = document.createElement('h3');
    heading.textContent = card.indicator;
    const cohort = document.createElement('p');
    cohort.className = 'kpi__cohort';
    cohort.textContent = `${card.meta?.kind === 'season' ? t('season') : t('cohort')} ${cohortLabel(card.meta, card.cohort)}`;
    const value = document.createElement('p');
    value.className = 'kpi__value';
    const detail = document.createElement('p');
    detail.className = 'kpi__detail';
    const gauge = document.createElement('div');
    gauge.className = 'kpi__gauge';
    gauge.setAttribute('aria-hidden', 'true');
    if (row.suppressed) {
      value.textContent = suppressedText(card.body);
      value.classList.add('kpi__value--suppressed');
      gauge.classList.add('kpi__gauge--suppressed');
    } else if (row.coverage == null) {
      value.textContent = t('no_value');
    } else {
      // Never print "95.0%" beside "below the 95% target": show the digit that decides.
      const shown = percent(row.coverage);
      value.textContent = row.coverage < target && shown === percent(target) ? percent(row.coverage, 2) : shown;
      Object.assign(value.dataset, { field: 'coverage', value: JSON.stringify(row.coverage), format: 'percent' });
      detail.textContent = `${t('ci')} ${t('ci_range', { low: percent(row.ci_low), high: percent(row.ci_high) })} · ${count(row.numerator)} / ${count(row.denominator)}`;
      const bar = document.createElement('span');
      bar.className = 'kpi__bar';
      bar.style.width = `${Math.min(100, row.coverage * 100)}%`;
      gauge.append(bar);
    }
    const mark = document.createElement('span');
    mark.className = 'kpi__target';
    mark.style.left = `${target * 100}%`;
    gauge.append(mark);
    const verdict = document.createElement('p');
    verdict.className = `kpi__verdict kpi__verdict--${status}`;
    verdict.textContent =
      status === 'met' ? `✓ ${t('at_or_above_target', { p: percent(target, 0) })}` : status === 'below' ? `▼ ${t('below_target', { p: percent(target, 0) })}` : '';
    const title = document.createElement('p');
    title.className = 'kpi__title';
    title.textContent = card.meta?.title ?? '';
    li.append(heading, cohort, value, gauge, detail, verdict, title);
    grid.append(li);
  }
  panel.body.replaceChildren(grid);

  panel.setTable({
    columns: [
      { label: t('indicator'), text: (row) => row.__indicator },
      { label: t('cohort'), text: (row) => row.__cohort },
      ...(panel.declaration.columns ?? []),
    ],
    rows: cards.map((card) => ({
      data: { ...(card.body.rows?.[0] ?? {}), __indicator: card.indicator, __cohort: cohortLabel(card.meta, card.cohort) },
      api: card.url,
      path: 'rows.0',
      suppressed: card.body.rows?.[0]?.suppressed === true,
      threshold: card.body.suppression_threshold,
    })),
  });
  panel.setSource(merged(cards), context.words);
  return cards.length ? 'ready' : 'empty';
}

/** One footer for several answers: each population source and definition version named once. */
export function merged(cards) {
  const first = cards[0]?.body ?? {};
  return {
    population_source: unique(cards.map((card) => card.body.population_source).filter(Boolean)).join('; '),
    definition_version: cards.map((card) => `${card.body.indicator} v${card.body.definition_version}`).join(', '),
    table_versions: first.table_versions,
    suppression_threshold: first.suppression_threshold,
  };
}
