// One declared panel on the page: its title and note, the chart drawn by its chart type, the
// data table, the downloads, and the footer naming where its figures come from.

import { ApiError, getJson } from './api.js';
import { boundUrl, unmetRequirement } from './declared.js';
import { dataTable } from './datatable.js';
import { downloadLink, fileStem, toCsv } from './download.js';
import { pick, t } from './i18n.js';
import { chartTypes } from './panels/index.js';

export class Panel {
  constructor(declaration, page) {
    this.declaration = declaration;
    this.page = page;
    this.type = chartTypes[declaration.chart];
    this.element = this.build();
    this.data = null;
    this.key = null;
  }

  build() {
    const decl = this.declaration;
    const section = document.createElement('section');
    section.className = `panel panel--${decl.width ?? 'half'}`;
    section.id = `panel-${decl.id}`;
    section.dataset.panel = decl.id;
    section.dataset.chart = decl.chart;
    section.setAttribute('aria-labelledby', `title-${decl.id}`);
    section.innerHTML = `
      <header class="panel__header"><h2 id="title-${decl.id}"></h2><p class="panel__note"></p></header>
      <div class="panel__status" role="status" aria-live="polite"></div>
      <div class="panel__body"></div>
      <details class="panel__table"><summary></summary><div class="panel__table-scroll"></div><p class="panel__downloads"></p></details>
      <footer class="panel__source"></footer>`;
    this.title = section.querySelector('h2');
    this.note = section.querySelector('.panel__note');
    this.status = section.querySelector('.panel__status');
    this.body = section.querySelector('.panel__body');
    this.details = section.querySelector('details');
    this.tableBox = section.querySelector('.panel__table-scroll');
    this.downloads = section.querySelector('.panel__downloads');
    this.footer = section.querySelector('.panel__source');
    if (decl.table === 'open') this.details.open = true;
    return section;
  }

  /** Fetches (when the selection changed) and draws. */
  async update(context) {
    const decl = this.declaration;
    this.context = context;
    this.title.textContent = pick(decl.title, context.words);
    this.note.textContent = pick(decl.note, context.words);
    this.note.hidden = !decl.note;
    this.details.querySelector('summary').textContent = t('data_table');
    if (!this.type) return this.fail(`unknown chart type “${decl.chart}”`);
    const unmet = unmetRequirement(decl.requires, context);
    if (unmet) return this.showMessage('not-applicable', t('not_applicable', { reason: this.requirementReason(unmet) }));
    if (decl.roles?.includes('operator') && !context.operatorView) {
      return this.showMessage('forbidden', t('operators_only'));
    }
    const key = JSON.stringify(this.type.key ? this.type.key(this, context) : this.url(context));
    if (key !== this.key || !this.data) {
      this.key = key;
      this.setState('loading');
      this.status.textContent = t('loading');
      try {
        const loadStarted = performance.now();
        const data = await this.type.load(this, context);
        this.element.dataset.loadMs = String(Math.round(performance.now() - loadStarted));
        if (key !== this.key) return undefined; // a newer selection took over
        this.data = data;
      } catch (error) {
        if (key !== this.key) return undefined;
        this.data = null;
        return this.failWith(error);
      }
    }
    return this.draw();
  }

  /** Redraws from the answers in hand (after a language switch). */
  draw() {
    if (!this.data) return undefined;
    this.title.textContent = pick(this.declaration.title, this.context.words);
    this.note.textContent = pick(this.declaration.note, this.context.words);
    this.details.querySelector('summary').textContent = t('data_table');
    this.body.hidden = false;
    this.details.hidden = false;
    this.footer.hidden = false;
    this.status.textContent = '';
    const started = performance.now();
    const empty = this.type.draw(this, this.data, this.context) === 'empty';
    this.element.dataset.drawMs = String(Math.round(performance.now() - started));
    this.setState(empty ? 'empty' : 'ready');
    return undefined;
  }

  requirementReason(key) {
    if (key === 'kind') {
      const kinds = this.declaration.requires.kind.map((kind) => t(`kind_${kind}`)).join(', ');
      return t('kind_not_supported', { kinds });
    }
    if (key === 'by') return t('map_needs_geography');
    return key;
  }

  /** The bound URL of the panel's declared API call (with `extra` context, e.g. an item). */
  url(context, extra = {}) {
    return boundUrl(this.declaration.api, { ...context.values, ...context, ...extra });
  }

  get(url) {
    return getJson(url);
  }

  setState(state) {
    this.element.dataset.state = state;
    this.element.setAttribute('aria-busy', state === 'loading' ? 'true' : 'false');
  }

  showMessage(state, message, link) {
    this.key = null;
    this.data = null;
    this.setState(state);
    this.body.hidden = true;
    this.details.hidden = true;
    this.footer.hidden = true;
    this.status.textContent = message;
    if (link) {
      const anchor = document.createElement('a');
      anchor.href = link.href;
      anchor.textContent = link.text;
      this.status.append(' ', anchor);
    }
  }

  failWith(error) {
    if (error instanceof ApiError && error.status === 401) {
      return this.showMessage('signed-out', t('signed_out'), { href: '/login', text: t('sign_in') });
    }
    if (error instanceof ApiError && error.status === 403) {
      const operatorOnly = this.declaration.roles?.includes('operator');
      return this.showMessage('forbidden', operatorOnly ? t('operators_only') : t('forbidden', { reason: error.message }));
    }
    return this.fail(error.message);
  }

  fail(reason) {
    this.showMessage('error', t('error', { reason }));
  }

  /** A box for the chart, labelled for screen readers. */
  chartBox(summary, height) {
    let box = this.body.querySelector('.chart');
    if (!box) {
      box = document.createElement('div');
      box.className = 'chart';
      box.setAttribute('role', 'img');
      this.body.append(box);
    }
    box.style.height = `${height ?? this.declaration.height ?? 320}px`;
    box.setAttribute('aria-label', t('chart_label', { title: summary ?? this.title.textContent }));
    return box;
  }

  /** Replaces the data table (see datatable.js) and the downloads of `answer` (when given). */
  setTable(spec, answer, csvRows = answer?.body?.rows ?? []) {
    this.tableBox.replaceChildren(dataTable({ caption: spec.caption ?? this.title.textContent, ...spec }));
    this.downloads.replaceChildren();
    if (answer) {
      const stem = fileStem(answer.url);
      this.downloads.append(
        downloadLink(t('download_csv'), `${stem}.csv`, 'text/csv', toCsv(csvRows)),
        ' ',
        downloadLink(t('download_json'), `${stem}.json`, 'application/json', answer.text),
      );
    }
    this.downloads.hidden = !answer;
  }

  /**
   * The footer: the declared denominator and, from the answer, the population source, the
   * indicator's definition version, the table versions and the suppression threshold.
   */
  setSource(body, words = {}) {
    const decl = this.declaration;
    const parts = [];
    if (decl.denominator) parts.push([t('denominator'), pick(decl.denominator, { ...this.context.words, ...words })]);
    if (decl.method) parts.push([t('method'), pick(decl.method, words)]);
    if (body?.population_source) parts.push([t('population_source'), body.population_source]);
    if (body?.definition_version != null) parts.push([t('definition_version'), String(body.definition_version)]);
    const versions = body?.table_versions ?? body?.tables;
    if (versions) {
      const list = Object.entries(versions)
        .map(([table, version]) => `${table} v${version}`)
        .join(', ');
      parts.push([t('table_versions'), list]);
    }
    if (body?.suppression_threshold != null) parts.push([t('threshold', { n: body.suppression_threshold }), '']);
    if (decl.source) parts.push([pick(decl.source, words), '']);
    this.footer.replaceChildren(
      ...parts.map(([name, value]) => {
        const span = document.createElement('span');
        span.className = 'source-item';
        span.textContent = value ? `${name}: ${value}` : name;
        return span;
      }),
    );
  }
}
