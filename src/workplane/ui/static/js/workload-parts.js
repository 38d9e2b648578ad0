// A workload's pods and events, as its agent last reported them (GET /workloads/{id}/pods and
// /workloads/{id}/events): two cards under the record on the workload page. Both are read with the
// page's own refreshes; the pods table shows the live pods first and the deleted ones after them.

import * as api from './api.js';
import { errorMessage, fill, h } from './dom.js';
import { ago, when } from './format.js';

const PAGE = 50; // what one request returns; more are counted, not listed

// Kubernetes pod phases → the dashboard's phase colours (app.css .phase-*).
const POD_PHASE_CLASS = { Pending: 'pending', Running: 'running', Succeeded: 'completed', Failed: 'failed' };

function podPhase(phase) {
  return h('span', { class: `phase phase-${POD_PHASE_CLASS[phase] || 'unknown'}` }, phase || 'Unknown');
}

function time(iso) {
  return iso ? h('time', { datetime: iso, title: ago(iso) }, when(iso)) : h('span', { class: 'none' }, '—');
}

function text(value) {
  return value === null || value === undefined || value === '' ? h('span', { class: 'none' }, '—') : String(value);
}

function gpus(resources) {
  const gpu = resources?.gpu;
  if (gpu === null || gpu === undefined) return null;
  return typeof gpu === 'object' ? gpu.request : gpu;
}

function podRow(pod) {
  const images = (pod.containers || []).map((c) => h('code', {}, c.image || c.name));
  return h('tr', { dataset: { pod: pod.id }, class: pod.deletedAt ? 'deleted' : null },
    h('td', {}, pod.name, pod.deletedAt ? h('span', { class: 'phase phase-deleted' }, 'Deleted') : null),
    h('td', {}, podPhase(pod.k8sPhase)),
    h('td', {}, text(pod.nodeName)),
    h('td', {}, text(pod.currentNodePool)),
    h('td', { class: 'num' }, text(gpus(pod.requestedResources))),
    h('td', { class: 'num' }, text(gpus(pod.allocatedResources))),
    h('td', {}, time(pod.createdAt)),
    h('td', {}, time(pod.completedAt)),
    h('td', {}, images.length ? h('span', { class: 'tags' }, images) : text(null)));
}

function podsCard(live, deleted) {
  const pods = [...live.pods, ...deleted.pods];
  const more = live.next || deleted.next
    ? h('p', { class: 'note' }, `Showing the first ${PAGE} live and ${PAGE} deleted pods.`) : null;
  const table = pods.length
    ? h('table', { class: 'grid compact pods' },
      h('thead', {}, h('tr', {}, ['Name', 'Phase', 'Node', 'Node pool', 'GPUs requested', 'GPUs allocated', 'Created',
        'Completed', 'Images'].map((t) => h('th', { scope: 'col' }, t)))),
      h('tbody', {}, pods.map(podRow)))
    : h('p', { class: 'empty' }, 'No pods reported for this workload.');
  return h('section', { class: 'card pods-card' },
    h('h2', {}, 'Pods ', h('span', { class: 'muted' }, `${live.pods.length} live, ${deleted.pods.length} deleted`)),
    more, table);
}

function eventsCard(page) {
  const table = page.events.length
    ? h('table', { class: 'grid compact events' },
      h('thead', {}, h('tr', {}, ['Time', 'Type', 'Reason', 'Object', 'Message', 'Source'].map((t) => h('th', { scope: 'col' }, t)))),
      h('tbody', {}, page.events.map((e) => h('tr', { dataset: { event: e.id }, class: e.type === 'Warning' ? 'warning' : null },
        h('td', {}, time(e.createdAt)),
        h('td', {}, text(e.type)),
        h('td', {}, text(e.reason)),
        h('td', {}, e.involvedObject ? `${e.involvedObject.kind}/${e.involvedObject.name}` : text(null)),
        h('td', {}, text(e.message)),
        h('td', {}, text(e.source))))))
    : h('p', { class: 'empty' }, 'No events reported for this workload.');
  return h('section', { class: 'card events-card' },
    h('h2', {}, 'Events ', h('span', { class: 'muted' }, 'newest first')),
    page.next ? h('p', { class: 'note' }, `Showing the newest ${PAGE} events.`) : null, table);
}

/** The pods and events of workload `id`: an element to place on the page, and `load(signal)` to
 * (re)read them into it. A failure is shown in place of the cards; the record above stays. */
export function workloadParts(id) {
  const element = h('div', { class: 'workload-parts' });
  const path = `/workloads/${encodeURIComponent(id)}`;
  async function load(signal) {
    try {
      const [live, deleted, events] = await Promise.all([
        api.get(`${path}/pods`, { limit: PAGE }, { signal }),
        api.get(`${path}/pods`, { limit: PAGE, deleted: true }, { signal }),
        api.get(`${path}/events`, { limit: PAGE }, { signal }),
      ]);
      fill(element, podsCard(live.body, deleted.body), eventsCard(events.body));
    } catch (error) {
      if (error.name === 'AbortError') return;
      fill(element, errorMessage(error, 'Loading the pods and events'));
    }
  }
  return { element, load };
}
