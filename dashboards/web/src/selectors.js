// The page's selectors, built from a dashboard's declared "selectors": indicator, cohort and
// choice lists. Each is a labelled <select>; one that does not apply to the chosen
// indicator's kind is disabled and binds no parameter.

import { cohortsFor } from './cohorts.js';
import { pick, t } from './i18n.js';

/** The options of `selector` given the current values and the page's lookups. */
export function optionsOf(selector, values, lookups) {
  if (selector.type === 'indicator') {
    const include = selector.include;
    return lookups.catalogue
      .filter((entry) => !include || include.includes(entry.indicator))
      .map((entry) => ({ value: entry.indicator, label: `${entry.indicator} — ${entry.title}` }));
  }
  if (selector.type === 'cohort') {
    const meta = selector.indicator ? lookups.catalogue.find((entry) => entry.indicator === values[selector.indicator]) : null;
    const { options, latestComplete } = cohortsFor(meta ?? { kind: 'birth_cohort', age_months: 0 }, lookups.freshness?.data_until);
    const all = selector.all ? [{ value: '', label: t('all') }] : [];
    return [...all, ...options.map((o) => ({ ...o, complete: Number(o.value) <= Number(latestComplete) }))];
  }
  return (selector.options ?? []).map((option) => ({
    value: String(option.value),
    label: pick(option.label, lookups.words ?? {}),
    params: option.params,
  }));
}

/** The default value of `selector`: declared, or the newest complete cohort, or the first option. */
export function defaultOf(selector, values, lookups) {
  const options = optionsOf(selector, values, lookups);
  if (selector.type === 'cohort' && selector.default == null) {
    const meta = selector.indicator ? lookups.catalogue.find((entry) => entry.indicator === values[selector.indicator]) : null;
    if (selector.all && !meta) return '';
    return cohortsFor(meta ?? { kind: 'birth_cohort', age_months: 0 }, lookups.freshness?.data_until).latestComplete;
  }
  if (selector.default != null && options.some((o) => o.value === String(selector.default))) return String(selector.default);
  return options[0]?.value ?? '';
}

/** Whether `selector` applies to the chosen indicator's kind. */
export function applies(selector, kind) {
  return !selector.kinds || kind == null || selector.kinds.includes(kind);
}

/** Settles every selector's value: kept when still offered, else its default. Declared order matters. */
export function settle(selectors, requested, lookups) {
  const values = {};
  for (const selector of selectors) {
    const options = optionsOf(selector, values, lookups);
    const wanted = requested[selector.id];
    values[selector.id] = wanted != null && options.some((o) => o.value === wanted) ? wanted : defaultOf(selector, values, lookups);
  }
  return values;
}

/** The form of selectors; `onChange(id, value)` is called on every change. */
export function renderSelectors(selectors, values, lookups, kind, onChange) {
  const form = document.createElement('form');
  form.className = 'selectors';
  form.setAttribute('aria-label', t('filters'));
  form.addEventListener('submit', (event) => event.preventDefault());
  for (const selector of selectors) {
    const wrap = document.createElement('div');
    wrap.className = 'selector';
    const id = `select-${selector.id}`;
    const label = document.createElement('label');
    label.htmlFor = id;
    label.textContent = pick(selector.label);
    const select = document.createElement('select');
    select.id = id;
    select.name = selector.id;
    select.dataset.selector = selector.id;
    for (const option of optionsOf(selector, values, lookups)) {
      const element = document.createElement('option');
      element.value = option.value;
      element.textContent = option.label;
      element.selected = option.value === values[selector.id];
      select.append(element);
    }
    select.disabled = !applies(selector, kind);
    select.addEventListener('change', () => onChange(selector.id, select.value));
    wrap.append(label, select);
    form.append(wrap);
  }
  return form;
}
