// A tiny element builder. Text always goes in as text nodes, never as HTML, so nothing the API
// returns (names, messages, commands) can inject markup.

export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key.startsWith('on')) el.addEventListener(key.slice(2).toLowerCase(), value);
    else if (key === 'class') el.className = value;
    else if (key === 'dataset') Object.assign(el.dataset, value);
    else el.setAttribute(key, value === true ? '' : String(value));
  }
  append(el, children);
  return el;
}

/** Replaces an element's children; like h(), it skips null, undefined and false (the DOM's own
 * replaceChildren would write them out as text). */
export function fill(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

function append(el, children) {
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue;
    if (Array.isArray(child)) append(el, child);
    else el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

export const SVG_NS = 'http://www.w3.org/2000/svg';

export function s(tag, attrs, ...children) {
  const el = document.createElementNS(SVG_NS, tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value !== null && value !== undefined) el.setAttribute(key, String(value));
  }
  for (const child of children.flat()) {
    if (child !== null && child !== undefined) el.append(child instanceof Node ? child : String(child));
  }
  return el;
}

/** An API failure as a message block: the API's own message, its details, and the status. */
export function errorMessage(error, what) {
  const status = error.status ? ` (HTTP ${error.status})` : '';
  return h('div', { class: 'message error', role: 'alert' },
    h('strong', {}, `${what} failed${status}: `), error.message || String(error),
    error.details ? h('span', { class: 'details' }, ` — ${error.details}`) : null);
}

/** Marks a finished render in the browser's performance timeline (read by bench/ui.py and the tests):
 * `<name>-rendered`, and a measure `<name>` from the mark that started the work. */
export function markRendered(name, from = 'route-start') {
  performance.mark(`${name}-rendered`);
  if (performance.getEntriesByName(from, 'mark').length) performance.measure(name, from, `${name}-rendered`);
}

/** Cluster display names, learnt once per tab from the telemetry endpoint (the API has no cluster
 * list); until then, or if that fails, a cluster shows as the start of its id. */
const clusterNames = new Map();
let clusterLookup = null;

export function clusterName(id) {
  return clusterNames.get(id) || (id ? id.slice(0, 8) : '—');
}

export function learnClusterNames(get) {
  clusterLookup ??= get('/workloads/telemetry', { telemetryType: 'WORKLOADS_COUNT', groupBy: 'ClusterId' })
    .then(({ body }) => {
      for (const value of body.values || []) {
        for (const group of value.groups || []) if (group.name) clusterNames.set(group.value, group.name);
      }
      return true;
    })
    .catch(() => false);
  return clusterLookup;
}
