// A panel of declared text only (a method note), paragraph by paragraph.

import { pick } from '../i18n.js';

export function key() {
  return 'note';
}

export async function load() {
  return {};
}

export function draw(panel, data, context) {
  const paragraphs = panel.declaration.paragraphs ?? [];
  panel.body.replaceChildren(
    ...paragraphs.map((text) => {
      const p = document.createElement('p');
      p.textContent = pick(text, context.words);
      return p;
    }),
  );
  panel.details.hidden = true;
  panel.footer.hidden = !panel.declaration.source;
  panel.setSource(null, context.words);
  return 'ready';
}
