// Every figure on screen comes from the server's JSON API, the same endpoints the command line
// prints. Answers are kept for a minute so that going back to a selection is instant.

const KEEP_MS = 60_000;
const answers = new Map();

/** A refused or failed API call: `status` is the HTTP status (0 when the server is unreachable). */
export class ApiError extends Error {
  constructor(status, reason, url) {
    super(reason);
    this.status = status;
    this.url = url;
  }
}

/** `path?params`, leaving out parameters without a value. */
export function apiUrl(path, params = {}) {
  const query = new URLSearchParams();
  for (const [name, value] of Object.entries(params)) {
    if (value !== undefined && value !== null && value !== '') query.append(name, String(value));
  }
  const text = query.toString();
  return text ? `${path}?${text}` : path;
}

/** The answer at `url` as {body, text}: the parsed JSON and its exact text (for downloads). */
export function getJson(url) {
  const kept = answers.get(url);
  if (kept && Date.now() - kept.at < KEEP_MS) return kept.promise;
  const promise = fetchJson(url);
  answers.set(url, { at: Date.now(), promise });
  promise.catch(() => answers.delete(url));
  return promise;
}

async function fetchJson(url) {
  let response;
  try {
    response = await fetch(url, {
      headers: { Accept: 'application/json' },
      credentials: 'same-origin',
      redirect: 'error',
    });
  } catch (error) {
    throw new ApiError(0, `the server did not answer (${error.message})`, url);
  }
  const text = await response.text();
  let body = null;
  try {
    body = JSON.parse(text);
  } catch {
    // Not JSON: the reason is the text itself.
  }
  if (!response.ok) {
    const reason = body && typeof body.error === 'string' ? body.error : text.slice(0, 200);
    throw new ApiError(response.status, reason, url);
  }
  if (body === null) throw new ApiError(response.status, 'the answer is not JSON', url);
  return { body, text };
}

