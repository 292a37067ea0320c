// Builds dashboards/dist/: the bundled page (app.js, app.css), index.html, the icon, and the
// declared dashboards (dashboards/*.json, checked here) under dist/dashboards/.
import { createHash } from 'node:crypto';
import { copyFileSync, mkdirSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as esbuild from 'esbuild';

const web = dirname(fileURLToPath(import.meta.url));
const declaredDir = join(web, '..');
const dist = join(declaredDir, 'dist');
const CHART_TYPES = ['bars-ci', 'below-target', 'curve', 'forest', 'freshness', 'headline', 'ingests', 'note', 'quarantine', 'rates', 'table', 'tilemap', 'trend'];
const SELECTOR_TYPES = ['indicator', 'cohort', 'choice'];

/** Stops the build with what is wrong in which declared file. */
function check(condition, file, message) {
  if (!condition) {
    console.error(`dashboards/${file}: ${message} (see dashboards/README.md)`);
    process.exit(1);
  }
}

function checkText(value, file, where) {
  check(value && typeof value.en === 'string' && typeof value.fr === 'string', file, `${where} needs {"en": ..., "fr": ...}`);
}

function checkDashboard(file, dashboard) {
  check(typeof dashboard.id === 'string' && /^[a-z][a-z0-9-]*$/.test(dashboard.id), file, '"id" must be a lower-case name');
  check(`${dashboard.id}.json` === file, file, `"id" must match the file name (${file})`);
  checkText(dashboard.title, file, '"title"');
  const selectorIds = new Set();
  for (const selector of dashboard.selectors ?? []) {
    check(typeof selector.id === 'string', file, 'every selector needs an "id"');
    check(SELECTOR_TYPES.includes(selector.type), file, `selector "${selector.id}": "type" must be one of ${SELECTOR_TYPES.join(', ')}`);
    checkText(selector.label, file, `selector "${selector.id}" "label"`);
    if (selector.type === 'choice') {
      check(Array.isArray(selector.options) && selector.options.length > 0, file, `selector "${selector.id}" needs "options"`);
      for (const option of selector.options) checkText(option.label, file, `selector "${selector.id}" option "${option.value}"`);
    }
    if (selector.pool != null) {
      // A pooling choice: its values are how many birth years end with the named cohort
      // selector's year (the API pools at most five); only birth cohorts pool.
      const cohort = (dashboard.selectors ?? []).find((s) => s.id === selector.pool);
      check(selector.type === 'choice' && cohort?.type === 'cohort', file, `selector "${selector.id}": "pool" must name a cohort selector, on a choice selector`);
      check(selector.options.every((o) => /^[1-5]$/.test(String(o.value))), file, `selector "${selector.id}": pooling options are 1 to 5 (birth years)`);
      check(Array.isArray(selector.kinds) && selector.kinds.length === 1 && selector.kinds[0] === 'birth_cohort', file, `selector "${selector.id}": a pooling selector needs "kinds": ["birth_cohort"]`);
    }
    selectorIds.add(selector.id);
  }
  const panelIds = new Set();
  for (const panel of dashboard.panels ?? []) {
    check(typeof panel.id === 'string' && !panelIds.has(panel.id), file, `every panel needs a unique "id" (${panel.id})`);
    panelIds.add(panel.id);
    check(CHART_TYPES.includes(panel.chart), file, `panel "${panel.id}": "chart" must be one of ${CHART_TYPES.join(', ')}`);
    checkText(panel.title, file, `panel "${panel.id}" "title"`);
    if (panel.note) checkText(panel.note, file, `panel "${panel.id}" "note"`);
    if (panel.chart !== 'note') {
      check(panel.api && typeof panel.api.path === 'string' && panel.api.path.startsWith('/api/'), file, `panel "${panel.id}" needs "api": {"path": "/api/...", "params": {...}}`);
      for (const template of Object.values(panel.api.params ?? {})) {
        for (const [, name] of String(template).matchAll(/\{(\w+)[\w.]*\}/g)) {
          check(selectorIds.has(name) || name === 'item' || hasOptionParam(dashboard, name) || isSpan(dashboard, name), file, `panel "${panel.id}": placeholder {${name}} names no selector`);
        }
      }
    }
    for (const column of panel.columns ?? []) {
      check(typeof column.field === 'string' || Array.isArray(column.fields), file, `panel "${panel.id}": every column needs "field" (or "fields")`);
      checkText(column.label, file, `panel "${panel.id}" column "${column.field ?? column.fields}"`);
    }
  }
}

/** {S_span}: the span of cohort selector S (pooled birth years, or S itself). */
function isSpan(dashboard, name) {
  return (dashboard.selectors ?? []).some((s) => s.type === 'cohort' && name === `${s.id}_span`);
}

function hasOptionParam(dashboard, name) {
  return (dashboard.selectors ?? []).some((s) => (s.options ?? []).some((o) => o.params && name in o.params));
}

rmSync(dist, { recursive: true, force: true });
mkdirSync(join(dist, 'dashboards'), { recursive: true });

const files = readdirSync(declaredDir).filter((name) => name.endsWith('.json')).sort();
const declared = [];
for (const file of files) {
  let dashboard;
  try {
    dashboard = JSON.parse(readFileSync(join(declaredDir, file), 'utf8'));
  } catch (error) {
    check(false, file, `not valid JSON: ${error.message}`);
  }
  checkDashboard(file, dashboard);
  declared.push({ file, order: dashboard.order ?? 100 });
  copyFileSync(join(declaredDir, file), join(dist, 'dashboards', file));
}
declared.sort((a, b) => a.order - b.order || a.file.localeCompare(b.file));
writeFileSync(join(dist, 'dashboards', 'index.json'), `${JSON.stringify({ dashboards: declared.map((d) => d.file) }, null, 2)}\n`);

const result = await esbuild.build({
  entryPoints: { app: join(web, 'src', 'main.js') },
  bundle: true,
  minify: true,
  format: 'esm',
  target: ['es2020'],
  outdir: dist,
  legalComments: 'eof',
  metafile: true,
  logLevel: 'warning',
});
await esbuild.build({
  entryPoints: { app: join(web, 'src', 'styles.css') },
  bundle: true,
  minify: true,
  outdir: dist,
  logLevel: 'warning',
});
const version = createHash('sha256')
  .update(readFileSync(join(dist, 'app.js')))
  .update(readFileSync(join(dist, 'app.css')))
  .digest('hex')
  .slice(0, 12);
writeFileSync(join(dist, 'index.html'), readFileSync(join(web, 'src', 'index.html'), 'utf8').replaceAll('{{version}}', version));
copyFileSync(join(web, 'src', 'favicon.svg'), join(dist, 'favicon.svg'));

// The bundle carries Apache ECharts (Apache-2.0), ZRender (BSD-3-Clause) and tslib (0BSD):
// their licence and notice texts travel with it, served at /licenses.txt.
const notices = [
  ['echarts', ['LICENSE', 'NOTICE']],
  ['zrender', ['LICENSE']],
  ['tslib', ['LICENSE.txt']],
].flatMap(([name, files]) => {
  const { version } = JSON.parse(readFileSync(join(web, 'node_modules', name, 'package.json'), 'utf8'));
  return files.map((file) => `==== ${name} ${version}: ${file} ====\n\n${readFileSync(join(web, 'node_modules', name, file), 'utf8').trim()}\n`);
});
writeFileSync(join(dist, 'licenses.txt'), `Third-party software in the vaxlake dashboards (dashboards/dist/app.js)\n\n${notices.join('\n')}`);
const bytes = Object.values(result.metafile.outputs).reduce((sum, output) => sum + output.bytes, 0);
console.log(`dashboards/dist: ${declared.length} dashboards, app.js ${Math.round(bytes / 1024)} KiB (version ${version})`);
