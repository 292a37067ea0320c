// The dashboards are declared in dashboards/*.json (see dashboards/README.md): this module
// reads them and binds a panel's API parameters to the page's selectors.

import { apiUrl, getJson } from './api.js';

/** The declared dashboards, in their declared order. */
export async function loadDashboards() {
  const { body: index } = await getJson('/dashboards/index.json');
  const dashboards = await Promise.all(index.dashboards.map((file) => getJson(`/dashboards/${file}`)));
  return dashboards.map(({ body }) => body);
}

/** The value at a dotted path ("item.cohort", "rows.3.coverage") of an object, or undefined. */
export function lookup(object, path) {
  return String(path)
    .split('.')
    .reduce((value, key) => (value == null ? undefined : value[key]), object);
}

/**
 * A parameter template bound to `context`: "{cohort}" takes the cohort selector's value,
 * "{item.indicator}" a field of the panel's current item; other text is kept.
 * A template that is one placeholder keeps the value's type; an empty one is left out.
 */
export function bindValue(template, context) {
  if (typeof template !== 'string') return template;
  const whole = /^\{([\w.]+)\}$/.exec(template);
  if (whole) return lookup(context, whole[1]);
  return template.replace(/\{([\w.]+)\}/g, (_, path) => String(lookup(context, path) ?? ''));
}

/** The URL of a declared API call ({path, params}) under `context`. */
export function boundUrl(api, context) {
  const params = {};
  for (const [name, template] of Object.entries(api.params ?? {})) {
    params[name] = bindValue(template, context);
  }
  return apiUrl(api.path, params);
}

/** Whether a panel's `requires` ({"kind": [...], "by": [...]}) holds under `context`; else the failed key. */
export function unmetRequirement(requires, context) {
  for (const [key, allowed] of Object.entries(requires ?? {})) {
    if (!allowed.includes(lookup(context, key))) return key;
  }
  return null;
}
