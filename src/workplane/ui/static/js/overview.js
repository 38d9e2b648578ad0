// The Overview page: tiles and charts from GET /workloads/telemetry (docs/contract.md §7). Every number is
// the server's aggregate over the whole inventory; the page never lists workloads.

import * as api from './api.js';
import { barList, columns } from './charts.js';
import { errorMessage, fill, h, markRendered } from './dom.js';
import { num, PHASES } from './format.js';
import { writeHash } from './state.js';

const PHASE_COLORS = {
  Running: '#2f9e44', Pending: '#f08c00', Completed: '#1c7ed6', Failed: '#e03131', Degraded: '#e8590c',
  Creating: '#74c0fc', Initializing: '#4dabf7', Resuming: '#4dabf7', Updating: '#4dabf7',
  Stopped: '#868e96', Stopping: '#adb5bd', Deleting: '#adb5bd', Terminating: '#adb5bd', Unknown: '#ced4da',
};
const PENDING_BUCKETS = ['0-5m', '5m-1h', '1h-24h', '24h+'];
const TOP_PROJECTS = 12;

// The three scope filters of the telemetry endpoint, and the groupBy that lists their choices.
const SCOPES = [
  ['clusterId', 'Cluster', 'ClusterId'],
  ['nodepoolName', 'Node pool', 'CurrentNodepools'],
  ['departmentId', 'Department', 'DepartmentId'],
];

const group = (value, key) => (value.groups || []).find((g) => g.key === key) || {};

function telemetry(type, scope, groupBy, signal) {
  return api.get('/workloads/telemetry', { telemetryType: type, groupBy, ...scope }, { signal })
    .then(({ body }) => body.values || []);
}

function filterHref(terms) {
  const params = new URLSearchParams();
  for (const term of terms) params.append('filter', term);
  return `#/workloads?${params}`;
}

export function mount(root, route) {
  let scope = Object.fromEntries(SCOPES.map(([param]) => [param, route.params.get(param) || '']));
  let inFlight = null;
  let first = true;

  const selects = SCOPES.map(([param, label]) => {
    const select = h('select', { id: `scope-${param}`, onChange: () => {
      scope = { ...scope, [param]: select.value };
      writeHash('overview', new URLSearchParams(Object.entries(scope).filter(([, v]) => v)));
      performance.mark('page-start');
      load('page-start');
    } }, h('option', { value: '' }, `All`));
    return [param, h('label', { class: 'scope' }, `${label} `, select), select];
  });
  const slot = h('div', { class: 'message-slot' });
  const tiles = h('div', { class: 'tiles' });
  const byPhase = h('div', { class: 'card-body' });
  const byDepartment = h('div', { class: 'card-body' });
  const byProject = h('div', { class: 'card-body' });
  const pending = h('div', { class: 'card-body' });
  const card = (title, body, note) => h('section', { class: 'card' }, h('h2', {}, title), note ? h('p', { class: 'note' }, note) : null, body);

  root.append(h('section', { class: 'page overview' },
    h('div', { class: 'page-head' }, h('h1', {}, 'Overview'),
      h('div', { class: 'scopes' }, selects.map(([, label]) => label))),
    slot, tiles,
    h('div', { class: 'cards' },
      card('Workloads by phase', byPhase),
      card('Pending time', pending, 'Workloads now pending, by time since they entered Pending'),
      card('GPU allocation by department', byDepartment),
      card(`GPU allocation by project`, byProject, `Top ${TOP_PROJECTS} projects by allocated GPUs`))));
  document.title = 'Overview · workplane';

  // The choices of each scope filter: what the unfiltered population has, learnt once.
  Promise.all(SCOPES.map(([, , token]) => telemetry('WORKLOADS_COUNT', {}, token))).then((answers) => {
    answers.forEach((values, i) => {
      const [param, , token] = SCOPES[i];
      const select = selects[i][2];
      const options = values.map((v) => group(v, token)).filter((g) => g.value)
        .map((g) => [g.value, g.name || g.value]).sort((a, b) => a[1].localeCompare(b[1]));
      select.append(...options.map(([value, name]) => h('option', { value, selected: value === scope[param] }, name)));
    });
  }).catch(() => { /* the main load reports the error */ });

  async function load(mark = 'route-start') {
    inFlight?.abort();
    const controller = new AbortController();
    inFlight = controller;
    const active = Object.fromEntries(Object.entries(scope).filter(([, v]) => v));
    try {
      const [phases, departments, projects, distribution] = await Promise.all([
        telemetry('WORKLOADS_COUNT', active, 'Phase', controller.signal),
        telemetry('GPU_ALLOCATION', active, 'DepartmentId', controller.signal),
        telemetry('GPU_ALLOCATION', active, 'ProjectId', controller.signal),
        telemetry('PENDING_TIME_DISTRIBUTION', active, undefined, controller.signal),
      ]);
      fill(slot);
      render(phases, departments, projects, distribution);
      if (first) markRendered('overview', mark);
      else markRendered('overview-page', mark);
      first = false;
    } catch (error) {
      if (error.name !== 'AbortError') fill(slot, errorMessage(error, 'Loading telemetry'));
    } finally {
      if (inFlight === controller) inFlight = null;
    }
  }

  function render(phases, departments, projects, distribution) {
    const count = new Map(phases.map((v) => [group(v, 'Phase').value, Number(v.value)]));
    const total = [...count.values()].reduce((a, b) => a + b, 0);
    const gpus = departments.reduce((sum, v) => sum + Number(v.value), 0);
    const pendingNow = distribution.reduce((sum, v) => sum + Number(v.value), 0);
    const tile = (label, value, href, cls) => h(href ? 'a' : 'div', { class: `tile ${cls || ''}`, href },
      h('span', { class: 'tile-value' }, value), h('span', { class: 'tile-label' }, label));
    fill(tiles,
      tile('Workloads', num(total), '#/workloads'),
      tile('Running', num(count.get('Running') || 0), filterHref(['phase==Running']), 'running'),
      tile('Pending', num(pendingNow || count.get('Pending') || 0), filterHref(['phase==Pending']), 'pending'),
      tile('Failed', num(count.get('Failed') || 0), filterHref(['phase==Failed']), 'failed'),
      tile('GPUs allocated', num(gpus), filterHref(['allocatedGPU>=0.01'])));

    fill(byPhase, barList(PHASES.filter((p) => count.get(p)).map((p) => ({
      label: p, value: count.get(p), color: PHASE_COLORS[p], href: filterHref([`phase==${p}`]),
    })).sort((a, b) => b.value - a.value), { format: num, empty: 'No workloads.' }));

    const named = (values, key) => values.map((v) => {
      const g = group(v, key);
      return { label: g.name || g.value || '—', id: g.value, value: Number(v.value) };
    }).filter((item) => item.value > 0).sort((a, b) => b.value - a.value);
    fill(byDepartment, barList(named(departments, 'DepartmentId').map((item) => ({
      ...item, href: filterHref([`departmentId==${item.id}`, 'allocatedGPU>=0.01']),
    })), { format: num, empty: 'No GPUs allocated.' }));
    const projectItems = named(projects, 'ProjectId');
    const top = projectItems.slice(0, TOP_PROJECTS).map((item) => ({
      ...item, color: '#0c8599', href: filterHref([`projectId==${item.id}`, 'allocatedGPU>=0.01']),
    }));
    const rest = projectItems.slice(TOP_PROJECTS).reduce((sum, item) => sum + item.value, 0);
    if (rest > 0) top.push({ label: `${projectItems.length - TOP_PROJECTS} other projects`, value: rest, color: '#99a4b0' });
    fill(byProject, barList(top, { format: num, empty: 'No GPUs allocated.' }));

    const buckets = new Map(distribution.map((v) => [group(v, 'PendingTime').value, Number(v.value)]));
    fill(pending, columns(PENDING_BUCKETS.map((b) => ({ label: b, value: buckets.get(b) || 0 })), { format: num }));
  }

  load();
  return {
    refresh() { if (!inFlight) load('none'); },
    dispose() { inFlight?.abort(); },
  };
}
