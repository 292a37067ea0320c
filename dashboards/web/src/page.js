// One dashboard on screen: its selectors and panels. A selection lives in the address
// (#/coverage?indicator=DTP3&cohort=2023), so a view can be bookmarked and shared.

import { cohortLabel } from './cohorts.js';
import { pick, t } from './i18n.js';
import { Panel } from './panel.js';
import { applies, optionsOf, renderSelectors, settle } from './selectors.js';

export class Page {
  constructor(dashboard, lookups, requested) {
    this.dashboard = dashboard;
    this.lookups = lookups;
    this.values = settle(dashboard.selectors ?? [], requested, lookups);
    this.panels = (dashboard.panels ?? []).map((declaration) => new Panel(declaration, this));
  }

  /** The meta of the indicator chosen on the page (or null). */
  indicatorMeta() {
    const selector = (this.dashboard.selectors ?? []).find((s) => s.type === 'indicator');
    return selector ? this.lookups.catalogue.find((entry) => entry.indicator === this.values[selector.id]) ?? null : null;
  }

  /** What panels bind their parameters, requirements and titles to. */
  context() {
    const meta = this.indicatorMeta();
    const kind = meta?.kind ?? null;
    const bound = {};
    const words = { indicator: meta?.indicator ?? '', indicator_title: meta?.title ?? '', age_months: meta?.age_months ?? '' };
    for (const selector of this.dashboard.selectors ?? []) {
      const value = this.values[selector.id];
      const effective = applies(selector, kind) ? value : '';
      bound[selector.id] = effective;
      const option = optionsOf(selector, this.values, { ...this.lookups, words }).find((o) => o.value === value);
      if (option?.params && applies(selector, kind)) Object.assign(bound, option.params);
      words[`${selector.id}_label`] = option?.label ?? '';
    }
    words.cohort = this.values.cohort ?? '';
    words.cohort_label = this.values.cohort ? cohortLabel(meta, this.values.cohort) : t('all');
    this.bindSpans(bound, words, meta);
    words.age = bound.age_months || meta?.age_months || '';
    return {
      ...bound,
      values: bound,
      kind,
      indicatorMeta: meta,
      catalogue: this.lookups.catalogue,
      freshness: this.lookups.freshness,
      geography: this.lookups.geography,
      operatorView: this.lookups.operatorView,
      target: this.dashboard.target ?? 0.95,
      measure: bound.measure,
      band: bound.band || null,
      words,
    };
  }

  /**
   * Every cohort selector S also binds {S_span} and the word {S_span_label}: the cohort
   * itself ("2024", "born 2024"), or, when a choice selector declares `"pool": "S"` and
   * applies to the indicator, that many birth years ending with the chosen one ("2022-2024",
   * "born 2022–2024 (three birth years pooled)"). Panels that accept pooled cohorts ask with
   * {cohort_span}; the others keep {cohort}, the last year of the span.
   */
  bindSpans(bound, words, meta) {
    const selectors = this.dashboard.selectors ?? [];
    for (const selector of selectors.filter((s) => s.type === 'cohort')) {
      const value = bound[selector.id] ?? '';
      bound[`${selector.id}_span`] = value;
      words[`${selector.id}_span_label`] = !value ? t('all') : meta?.kind === 'birth_cohort' ? t('cohort_born', { year: value }) : cohortLabel(meta, value);
      // Only birth cohorts pool (the API refuses pooled seasons and age bands).
      const pool = meta?.kind === 'birth_cohort' ? selectors.find((s) => s.pool === selector.id && applies(s, meta.kind)) : null;
      const years = pool ? Number(this.values[pool.id]) : 1;
      const last = Number(value);
      if (!value || !Number.isInteger(last) || !(years > 1)) continue;
      const first = last - years + 1;
      bound[`${selector.id}_span`] = `${first}-${last}`;
      words[`${selector.id}_span_label`] = t('cohort_pooled', { first, last, n: t(`number_${years}`) });
    }
  }

  render(main, onSelection) {
    this.main = main;
    this.onSelection = onSelection;
    const heading = document.createElement('h1');
    heading.id = 'page-title';
    heading.textContent = pick(this.dashboard.title);
    const intro = document.createElement('p');
    intro.className = 'intro';
    intro.textContent = pick(this.dashboard.intro);
    this.selectorsBox = document.createElement('div');
    this.selectorsBox.className = 'selectors-box';
    const grid = document.createElement('div');
    grid.className = 'panels';
    grid.append(...this.panels.map((panel) => panel.element));
    main.replaceChildren(heading, intro, this.selectorsBox, grid);
    document.title = `${pick(this.dashboard.title)} — vaxlake`;
    return this.refresh();
  }

  renderSelectors() {
    const context = this.context();
    const form = renderSelectors(this.dashboard.selectors ?? [], this.values, { ...this.lookups, words: context.words }, context.kind, (id, value) => this.select(id, value));
    const focused = document.activeElement?.dataset?.selector;
    this.selectorsBox.replaceChildren(form);
    if (focused) form.querySelector(`[data-selector="${focused}"]`)?.focus();
  }

  select(id, value) {
    this.values = settle(this.dashboard.selectors ?? [], { ...this.values, [id]: value }, this.lookups);
    this.onSelection(this.values);
    return this.refresh();
  }

  /** Redraws selectors and updates every panel; resolves when all panels have settled. */
  async refresh() {
    const started = performance.now();
    this.generation = (this.generation ?? 0) + 1;
    const generation = this.generation;
    this.main.dataset.state = 'loading';
    this.renderSelectors();
    const context = this.context();
    await Promise.all(this.panels.map((panel) => panel.update(context)));
    if (generation !== this.generation) return; // a newer selection is being drawn
    this.main.dataset.state = 'ready';
    this.main.dataset.renderMs = String(Math.round(performance.now() - started));
  }
}
