// Downloads of an API answer: JSON is the answer's own text; CSV flattens its rows. Both come
// from the answer as the server sent it, so a suppressed cell carries no number there either.

function flatten(row, prefix = '', out = {}) {
  for (const [key, value] of Object.entries(row)) {
    const name = prefix ? `${prefix}.${key}` : key;
    if (value && typeof value === 'object' && !Array.isArray(value)) flatten(value, name, out);
    else out[name] = Array.isArray(value) ? value.join(';') : value;
  }
  return out;
}

function csvField(value) {
  if (value == null) return '';
  const text = String(value);
  return /[",\r\n]/.test(text) ? `"${text.replace(/"/g, '""')}"` : text;
}

/** RFC 4180 text of `rows` (objects; nested objects become dotted columns). */
export function toCsv(rows) {
  const flat = rows.map((row) => flatten(row));
  const columns = [];
  for (const row of flat) for (const key of Object.keys(row)) if (!columns.includes(key)) columns.push(key);
  const lines = [columns.map(csvField).join(',')];
  for (const row of flat) lines.push(columns.map((column) => csvField(row[column])).join(','));
  return `${lines.join('\r\n')}\r\n`;
}

/** A download link for `text` as a file `name` of type `mime`. */
export function downloadLink(label, name, mime, text) {
  const link = document.createElement('a');
  link.className = 'download';
  link.textContent = label;
  link.download = name;
  link.href = URL.createObjectURL(new Blob([text], { type: mime }));
  return link;
}

/** A file name for an API URL: "/api/coverage?indicator=DTP3&cohort=2023" → "coverage-DTP3-2023". */
export function fileStem(url) {
  const [path, query = ''] = url.split('?');
  const parts = [path.replace(/^\/api\//, '').replace(/\//g, '-')];
  for (const value of new URLSearchParams(query).values()) parts.push(value);
  return parts.join('-').replace(/[^\w.-]+/g, '_');
}
