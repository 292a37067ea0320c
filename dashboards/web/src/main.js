// The dashboards' entry point: the page frame (header, navigation, language switch), the
// lookups every dashboard shares (indicator catalogue, freshness, geography, whether the
// caller sees operators' data), and hash routing between the declared dashboards.

import { ApiError, getJson } from './api.js';
import { loadDashboards } from './declared.js';
import { lang, pick, setLang, t } from './i18n.js';
import { Page } from './page.js';

const main = document.getElementById('main');
let dashboards = [];
let lookups = null;
let page = null;

function parseHash() {
  const [path, query = ''] = window.location.hash.replace(/^#\/?/, '').split('?');
  return { id: path || dashboards[0]?.id, requested: Object.fromEntries(new URLSearchParams(query)) };
}

function writeHash(id, values) {
  const query = new URLSearchParams(Object.entries(values).filter(([, v]) => v !== '' && v != null)).toString();
  history.replaceState(null, '', `#/${id}${query ? `?${query}` : ''}`);
}

function renderFrame(activeId) {
  document.documentElement.lang = lang();
  document.getElementById('skip').textContent = t('skip');
  document.getElementById('app-title').textContent = t('app_title');
  const nav = document.getElementById('nav');
  nav.setAttribute('aria-label', t('nav_label'));
  const list = document.createElement('ul');
  for (const dashboard of dashboards) {
    const li = document.createElement('li');
    const link = document.createElement('a');
    link.href = `#/${dashboard.id}`;
    link.textContent = pick(dashboard.title);
    link.dataset.dashboard = dashboard.id;
    if (dashboard.id === activeId) link.setAttribute('aria-current', 'page');
    li.append(link);
    list.append(li);
  }
  nav.replaceChildren(list);
  const switcher = document.getElementById('lang-switch');
  switcher.textContent = t('language_switch');
  switcher.setAttribute('aria-label', t('language_switch_label'));
  switcher.lang = lang() === 'en' ? 'fr' : 'en';
  document.getElementById('sign-out').textContent = t('sign_out');
  document.getElementById('footer-text').textContent = t('footer_text');
  document.getElementById('footer-licences').textContent = t('licences');
}

async function route({ focus = false } = {}) {
  const { id, requested } = parseHash();
  const dashboard = dashboards.find((d) => d.id === id) ?? dashboards[0];
  renderFrame(dashboard.id);
  page = new Page(dashboard, lookups, requested);
  writeHash(dashboard.id, page.values);
  const rendering = page.render(main, (values) => writeHash(dashboard.id, values));
  if (focus) main.focus();
  await rendering;
}

function showFatal(error) {
  main.dataset.state = 'error';
  const p = document.createElement('p');
  p.className = 'fatal';
  p.setAttribute('role', 'alert');
  if (error instanceof ApiError && error.status === 401) {
    p.textContent = `${t('signed_out')} `;
    const link = document.createElement('a');
    link.href = '/login';
    link.textContent = t('sign_in');
    p.append(link);
  } else {
    p.textContent = t('error', { reason: error.message });
  }
  main.replaceChildren(p);
}

/** The caller sees operators' data when /api/health answers them in full (CONTRACTS.md). */
async function operatorView() {
  try {
    const { body } = await getJson('/api/health');
    return 'tables' in body;
  } catch {
    return false;
  }
}

async function start() {
  document.getElementById('lang-switch').addEventListener('click', () => {
    setLang(lang() === 'en' ? 'fr' : 'en');
    route().catch(showFatal);
  });
  document.documentElement.lang = lang();
  try {
    const [declared, catalogue, freshness, geography, operator] = await Promise.all([
      loadDashboards(),
      getJson('/api/coverage/indicators'),
      getJson('/api/freshness'),
      getJson('/api/geography'),
      operatorView(),
    ]);
    dashboards = declared;
    lookups = {
      catalogue: catalogue.body.indicators ?? [],
      ageBands: catalogue.body.age_bands ?? [],
      freshness: freshness.body,
      geography: geography.body,
      operatorView: operator,
    };
    window.addEventListener('hashchange', () => route({ focus: true }).catch(showFatal));
    await route();
  } catch (error) {
    renderFrame(null);
    showFatal(error);
  }
}

start();
