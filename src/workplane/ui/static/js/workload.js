// One workload: every field of the record, grouped the way a person reads them; what the record
// tells of its history; and its metrics (GET /workloads/{id}/metrics, docs/contract.md §8) over a chosen
// time range, with as many samples as the chart is wide.

import * as api from './api.js';
import { lineChart } from './charts.js';
import { clusterName, errorMessage, fill, h, learnClusterNames, markRendered } from './dom.js';
import { ago, bytes, duration, num, phaseClass, when } from './format.js';
import { lastListHash, writeHash } from './state.js';

const RANGES = [
  ['life', 'Lifetime'],
  ['15m', '15 min', 15 * 60_000],
  ['1h', '1 hour', 3_600_000],
  ['6h', '6 hours', 6 * 3_600_000],
  ['24h', '24 hours', 86_400_000],
  ['7d', '7 days', 7 * 86_400_000],
];
const PIXELS_PER_SAMPLE = 5; // one point every 5 px: smooth lines, no more points than can be seen

const cores = (v) => `${num(v)} cores`;
const gpusFmt = (v) => `${num(v)} GPU${Number(v) === 1 ? '' : 's'}`;
const pct = (v) => `${num(v)} %`;

// [title, unit formatter, fixed max, [[metricType, series label], ...]]
const CHARTS = [
  ['GPU utilisation', pct, 100, [['GPU_UTILIZATION', 'Utilisation']]],
  ['GPU memory', bytes, null, [['GPU_MEMORY_USAGE_BYTES', 'Used'], ['GPU_MEMORY_REQUEST_BYTES', 'Requested']]],
  ['CPU', cores, null, [['CPU_USAGE_CORES', 'Used'], ['CPU_REQUEST_CORES', 'Requested'], ['CPU_LIMIT_CORES', 'Limit']]],
  ['CPU memory', bytes, null, [['CPU_MEMORY_USAGE_BYTES', 'Used'], ['CPU_MEMORY_REQUEST_BYTES', 'Requested'], ['CPU_MEMORY_LIMIT_BYTES', 'Limit']]],
  ['GPU allocation', gpusFmt, null, [['GPU_ALLOCATION', 'Allocated GPUs']]],
  ['Pods', num, null, [['POD_COUNT', 'Pods'], ['RUNNING_POD_COUNT', 'Running']]],
];
const METRIC_TYPES = CHARTS.flatMap(([, , , series]) => series.map(([type]) => type));
// The series a cluster's agent measures (the others follow from the workload's own record). Many
// sources report none of them (the shipped traces have no utilisation): the page says so plainly
// rather than blaming the time range.
const MEASURED = new Map([
  ['GPU_UTILIZATION', 'GPU utilisation'], ['GPU_MEMORY_USAGE_BYTES', 'GPU memory use'],
  ['CPU_USAGE_CORES', 'CPU use'], ['CPU_MEMORY_USAGE_BYTES', 'CPU memory use'],
]);

/** A value as a person reads it: "—" for nothing, lists as tags, objects as compact JSON. */
function show(value) {
  if (value === null || value === undefined || value === '') return h('span', { class: 'none' }, '—');
  if (Array.isArray(value)) {
    if (!value.length) return h('span', { class: 'none' }, 'none');
    if (value.every((v) => typeof v !== 'object')) return h('span', { class: 'tags' }, value.map((v) => h('code', {}, String(v))));
    return h('pre', { class: 'json' }, JSON.stringify(value, null, 2));
  }
  if (typeof value === 'object') {
    if (!Object.keys(value).length) return h('span', { class: 'none' }, 'none');
    return h('pre', { class: 'json' }, JSON.stringify(value, null, 2));
  }
  if (typeof value === 'boolean') return value ? 'yes' : 'no';
  return String(value);
}

/** The requested pod count as a number, with the bounds of elastic and batch workloads after it:
 * "4", "2 (min 1, max 8)". */
function requestedPods(requested) {
  if (!requested) return null;
  const bounds = ['min', 'max', 'parallelism', 'completions']
    .filter((key) => requested[key] != null).map((key) => `${key} ${num(requested[key])}`);
  if (requested.number == null && !bounds.length) return null;
  const number = requested.number == null ? '—' : num(requested.number);
  return bounds.length ? `${number} (${bounds.join(', ')})` : number;
}

function section(title, rows, extra) {
  return h('section', { class: 'card fields' }, h('h2', {}, title),
    h('dl', {}, rows.map(([label, value]) => [h('dt', {}, label), h('dd', {}, value instanceof Node ? value : show(value))])),
    extra || null);
}

function resourcesTable(w) {
  const req = w.workloadRequestedResources || {};
  const pod = w.podsRequestedResources || {};
  const alloc = w.allocatedResources || {};
  const pair = (r, f = (v) => v) => (r ? `${r.request ?? '—'}${r.limit != null ? ` (limit ${f(r.limit)})` : ''}` : '—');
  const rows = [
    ['GPU', pair(req.gpu), pair(pod.gpu), alloc.gpu ?? '—'],
    ['GPU memory', pair(req.gpuMemory), pair(pod.gpuMemory), alloc.gpuMemory ?? '—'],
    ['CPU cores', pair(req.cpu), pair(pod.cpu), alloc.cpu ?? '—'],
    ['CPU memory', pair(req.cpuMemory), pair(pod.cpuMemory), alloc.cpuMemory ?? '—'],
  ];
  return h('section', { class: 'card' }, h('h2', {}, 'Resources'),
    h('table', { class: 'grid compact' },
      h('thead', {}, h('tr', {}, ['', 'Requested (workload)', 'Requested (per pod)', 'Allocated'].map((t) => h('th', { scope: 'col' }, t)))),
      h('tbody', {}, rows.map((r) => h('tr', {}, h('th', { scope: 'row' }, r[0]), r.slice(1).map((v) => h('td', {}, String(v))))))),
    h('dl', {},
      h('dt', {}, 'GPU request type'), h('dd', {}, show(req.gpuRequestType ?? pod.gpuRequestType)),
      h('dt', {}, 'Extended resources'), h('dd', {}, show(req.extendedResources ?? alloc.extendedResources)),
      h('dt', {}, 'Idle allocated GPUs'), h('dd', {}, show(w.idleAllocatedGpus)),
      h('dt', {}, 'Idle GPUs (deprecated)'), h('dd', {}, show(w.idleGpus))));
}

/** What the record tells of the workload's life, in time order. */
function history(w) {
  const events = [[w.createdAt, 'Submitted', `created in ${w.projectName}`]];
  if (w.phaseUpdatedAt) {
    events.push([w.phaseUpdatedAt, `Phase ${w.phase}`,
      [w.phaseMessage, w.phaseReason].filter(Boolean).join(' — ') || 'current phase', w.phase]);
  }
  if (w.k8sPhaseUpdatedAt) events.push([w.k8sPhaseUpdatedAt, `Kubernetes phase ${w.k8sPhase ?? '—'}`, 'as reported by the cluster']);
  for (const c of w.conditions || []) {
    if (c.lastTransitionTime) events.push([c.lastTransitionTime, `Condition ${c.type}: ${c.status}`, [c.reason, c.message].filter(Boolean).join(' — ')]);
  }
  if (w.completedAt) events.push([w.completedAt, 'Completed', `finished as ${w.phase}`]);
  if (w.deletedAt) events.push([w.deletedAt, 'Deleted', 'kept for the retention period']);
  events.sort((a, b) => new Date(a[0]) - new Date(b[0]));
  const totals = h('div', { class: 'totals' },
    h('div', {}, h('span', { class: 'total-value pending-time' }, duration(w.totalPendingTimeSeconds)), h('span', {}, 'pending in total')),
    h('div', {}, h('span', { class: 'total-value running-time' }, duration(w.totalRunningTimeSeconds)), h('span', {}, 'running in total')));
  const messages = w.pendingSchedulingMessages?.length
    ? h('div', { class: 'scheduling' }, h('h3', {}, 'Scheduling messages'),
      h('ul', {}, w.pendingSchedulingMessages.map((m) => h('li', {},
        h('strong', {}, m.nodePool), `: ${m.userMessage || m.reason}`, m.phaseReason ? ` (${m.phaseReason})` : ''))))
    : null;
  return h('section', { class: 'card history' }, h('h2', {}, 'History'), totals,
    h('ol', { class: 'timeline' }, events.map(([at, title, text, phase]) => h('li', {},
      h('span', { class: `dot ${phase ? phaseClass(phase) : ''}` }),
      h('time', { datetime: at, title: ago(at) }, when(at)),
      h('strong', {}, title), text ? h('span', { class: 'muted' }, ` ${text}`) : null))),
    messages,
    h('p', { class: 'note' }, 'The API keeps no full phase log; the pods chart below shows how the pod counts moved over time.'));
}

export function mount(root, route) {
  const id = route.path[1];
  let range = route.params.get('range') || 'life';
  let record = null;
  let inFlight = null;
  let first = true;

  const head = h('div', { class: 'page-head' });
  const slot = h('div', { class: 'message-slot' });
  const body = h('div', { class: 'detail' });
  const rangeBar = h('div', { class: 'segmented', role: 'group', 'aria-label': 'Time range' });
  const metricsSlot = h('div', { class: 'message-slot' });
  const chartGrid = h('div', { class: 'charts' });
  // Shown once there is a workload to show metrics of.
  const metrics = h('section', { class: 'metrics', hidden: true },
    h('div', { class: 'section-head' }, h('h2', {}, 'Metrics'), rangeBar), metricsSlot, chartGrid);

  root.append(h('section', { class: 'page' },
    h('a', { class: 'back', href: lastListHash() }, '‹ Workloads'),
    head, slot, body, metrics));

  function renderRanges() {
    fill(rangeBar, ...RANGES.map(([key, label]) => h('button', {
      type: 'button', class: key === range ? 'active' : '', 'aria-pressed': key === range ? 'true' : 'false',
      onClick: () => {
        range = key;
        const params = new URLSearchParams(key === 'life' ? {} : { range: key });
        writeHash(`workloads/${encodeURIComponent(id)}`, params, { push: false });
        renderRanges();
        loadMetrics();
      },
    }, label)));
  }

  function renderRecord(w) {
    document.title = `${w.name} · workplane`;
    fill(head,
      h('h1', {}, w.name),
      h('span', { class: phaseClass(w.phase) }, w.phase),
      w.deletedAt ? h('span', { class: 'phase phase-deleted' }, 'Deleted') : null,
      h('span', { class: 'muted' }, `${w.type} · ${w.category ?? '—'} · ${w.projectName}`));
    const used = new Set();
    const take = (label, key, value) => { used.add(key); return [label, value === undefined ? w[key] : value]; };
    const sections = [
      section('Identity', [
        take('Name', 'name'), take('Id', 'id', h('code', {}, w.id)), take('Type', 'type'), take('Category', 'category'),
        take('Namespace', 'namespace'), take('Source', 'source'), take('Source API', 'sourceApi'),
        take('Submitted by', 'submittedBy'), take('Tenant', 'tenantId'),
        take('AI application', 'aiApplicationName'), take('AI application id', 'aiApplicationId'),
      ]),
      section('Status', [
        take('Phase', 'phase', h('span', { class: phaseClass(w.phase) }, w.phase)), take('Phase message', 'phaseMessage'),
        take('Phase reason', 'phaseReason'), take('Phase since', 'phaseUpdatedAt', when(w.phaseUpdatedAt)),
        take('Kubernetes phase', 'k8sPhase'), take('Kubernetes phase since', 'k8sPhaseUpdatedAt', when(w.k8sPhaseUpdatedAt)),
        take('Running pods', 'runningPods'),
        take('Requested pods', 'requestedPods', requestedPods(w.requestedPods)),
      ]),
      section('Organisation', [
        take('Cluster', 'clusterId', h('span', {}, clusterName(w.clusterId), ' ', h('code', { class: 'muted' }, w.clusterId))),
        take('Project', 'projectName', `${w.projectName} (id ${w.projectId})`), take('Department', 'departmentName', `${w.departmentName ?? '—'} (id ${w.departmentId ?? '—'})`),
        take('Requested node pools', 'requestedNodePools'), take('Current node pools', 'currentNodePools'), take('Topology', 'topology'),
      ]),
      section('Scheduling', [
        take('Priority class', 'priorityClassName'), take('Priority', 'priority'), take('Preemptible', 'preemptible'),
        take('Guaranteed runtime ends', 'guaranteedRuntimeEndsAt', w.guaranteedRuntimeEndsAt ? when(w.guaranteedRuntimeEndsAt) : null),
        take('Distributed framework', 'distributedFramework'),
      ]),
      section('Times', [
        take('Created', 'createdAt', when(w.createdAt)), take('Updated', 'updatedAt', when(w.updatedAt)),
        take('Completed', 'completedAt', w.completedAt ? when(w.completedAt) : null),
        take('Deleted', 'deletedAt', w.deletedAt ? when(w.deletedAt) : null),
        take('Total pending', 'totalPendingTimeSeconds', `${duration(w.totalPendingTimeSeconds)} (${num(w.totalPendingTimeSeconds)} s)`),
        take('Total running', 'totalRunningTimeSeconds', `${duration(w.totalRunningTimeSeconds)} (${num(w.totalRunningTimeSeconds)} s)`),
      ]),
      section('Specification', [
        take('Images', 'images'), take('Command', 'command', w.command ? h('code', {}, w.command) : null),
        take('Arguments', 'arguments', w.arguments ? h('code', {}, w.arguments) : null),
        take('Environment variables', 'environmentVariables'), take('URLs', 'urls'), take('Data sources', 'datasources'),
        take('Environments', 'environments'), take('External connections', 'externalConnections'),
        take('Children', 'childrenIds'), take('Supported actions', 'actionsSupport'), take('Additional fields', 'additionalFields'),
      ]),
    ];
    for (const key of ['workloadRequestedResources', 'podsRequestedResources', 'allocatedResources', 'idleAllocatedGpus',
      'idleGpus', 'conditions', 'pendingSchedulingMessages', 'projectId', 'departmentId']) used.add(key);
    // Anything the server adds that is not placed above still shows, so no field is ever hidden.
    const others = Object.keys(w).filter((key) => !used.has(key)).map((key) => [key, w[key]]);
    const conditions = (w.conditions || []).length
      ? h('section', { class: 'card' }, h('h2', {}, 'Conditions'), h('table', { class: 'grid compact' },
        h('thead', {}, h('tr', {}, ['Type', 'Status', 'Reason', 'Message', 'Since'].map((t) => h('th', { scope: 'col' }, t)))),
        h('tbody', {}, w.conditions.map((c) => h('tr', {}, [c.type, c.status, c.reason, c.message].map((v) => h('td', {}, show(v))),
          h('td', {}, when(c.lastTransitionTime)))))))
      : null;
    fill(body,
      h('div', { class: 'columns-2' }, history(w), resourcesTable(w)),
      h('div', { class: 'field-grid' }, sections, others.length ? section('Other fields', others) : null),
      conditions,
      h('details', { class: 'card raw' }, h('summary', {}, 'The record as the API returns it'), h('pre', { class: 'json' }, JSON.stringify(w, null, 2))));
  }

  function window_(w) {
    const now = Date.now();
    const endOfLife = Date.parse(w.deletedAt || w.completedAt || '') || now;
    if (range === 'life') {
      const start = Date.parse(w.createdAt);
      return [start, Math.max(endOfLife, start + 60_000)];
    }
    const span = RANGES.find(([key]) => key === range)?.[2] ?? 3_600_000;
    const end = Math.min(now, Math.max(endOfLife, Date.parse(w.createdAt) + span));
    return [end - span, end];
  }

  /** Of ``types`` (measured series without samples in the range shown), those without a single sample
   * in the workload's whole life: the cluster does not report them, whatever the range. One point over
   * the whole life answers that; if the question fails, nothing is claimed. */
  async function neverReported(w, types) {
    if (!types.length) return new Set();
    // One point is the mean over (start, end]: a minute before the workload's creation up to now.
    const start = Date.parse(w.createdAt) - 60_000;
    try {
      const { body } = await api.get(`/workloads/${encodeURIComponent(id)}/metrics`, {
        metricType: types.join(','), start: new Date(start).toISOString(),
        end: new Date(Math.max(Date.now(), start + 120_000)).toISOString(), numberOfSamples: 1,
      });
      return new Set((body.measurements || []).filter((m) => !(m.values || []).length).map((m) => m.type));
    } catch {
      return new Set();
    }
  }

  async function loadMetrics(mark = null) {
    if (!record) return;
    const [start, end] = window_(record);
    const width = Math.max(320, Math.floor((chartGrid.clientWidth || 1000) / 2) - 40);
    const samples = Math.min(1000, Math.max(2, Math.floor(width / PIXELS_PER_SAMPLE)));
    try {
      const { status, body: answer } = await api.get(`/workloads/${encodeURIComponent(id)}/metrics`, {
        metricType: METRIC_TYPES.join(','), start: new Date(start).toISOString(), end: new Date(end).toISOString(),
        numberOfSamples: samples,
      });
      const byType = new Map((answer.measurements || []).map((m) => [m.type, m.values || []]));
      const unreported = await neverReported(record, [...MEASURED.keys()].filter((t) => byType.get(t)?.length === 0));
      fill(metricsSlot, status === 207
        ? h('div', { class: 'message info' }, 'Some metrics are not available for this workload.') : '');
      fill(chartGrid, ...CHARTS.map(([title, format, max, series]) => {
        const known = series.filter(([type]) => byType.has(type));
        const lines = known.map(([type, label]) => ({
          label, points: byType.get(type).map((p) => [Date.parse(p.timestamp), Number(p.value)]),
        }));
        const silent = known.filter(([type]) => unreported.has(type)).map(([type]) => MEASURED.get(type));
        const saying = silent.length ? `This cluster reports no ${silent.join(' or ')} for this workload.` : '';
        let content;
        if (!known.length) content = h('p', { class: 'empty' }, 'Not available for this workload.');
        else if (!lines.some((l) => l.points.length)) content = h('p', { class: 'empty' }, saying || 'No samples in this time range.');
        else {
          content = [lineChart(lines, { width, height: 190, format, start, end, max: max ?? undefined, binary: format === bytes })];
          if (saying) content.push(h('p', { class: 'note unreported' }, saying));
        }
        return h('section', { class: 'card chart-card', dataset: { metric: series[0][0] } }, h('h3', {}, title), content);
      }));
      if (mark) markRendered('workload-metrics', mark);
    } catch (error) {
      fill(metricsSlot, errorMessage(error, 'Loading metrics'));
    }
  }

  async function load(quiet = false) {
    inFlight?.abort();
    const controller = new AbortController();
    inFlight = controller;
    try {
      const [{ body: w }] = await Promise.all([
        api.get(`/workloads/${encodeURIComponent(id)}`, {}, { signal: controller.signal }),
        learnClusterNames(api.get),
      ]);
      record = w;
      fill(slot);
      renderRecord(w);
      metrics.hidden = false;
      if (first) {
        markRendered('workload');
        renderRanges();
        first = false;
        loadMetrics('workload-rendered');
      } else {
        loadMetrics();
      }
    } catch (error) {
      if (error.name === 'AbortError') return;
      if (record && (error.status === 404 || error.status === 400)) {
        record = null; // gone since it was shown (purged, or access withdrawn)
      }
      if (!record && (error.status === 404 || error.status === 400)) {
        notFound(error);
      } else if (!quiet || !record) {
        fill(slot, errorMessage(error, 'Loading the workload'));
        fill(head, h('h1', {}, 'Workload'));
      }
    } finally {
      if (inFlight === controller) inFlight = null;
    }
  }

  /** No such workload (404), or not a workload id at all (400): say so, in place of the record. */
  function notFound(error) {
    document.title = 'Workload not found · workplane';
    metrics.hidden = true;
    fill(body);
    fill(head, h('h1', {}, 'Workload not found'));
    fill(slot, h('div', { class: 'message info not-found', role: 'status' },
      h('p', {}, 'There is no workload ', h('code', {}, id), ' that you can see. It may never have existed, ',
        'have been deleted longer ago than the retention period, or belong to a project you have no access to.'),
      h('p', { class: 'details' }, `The server said (HTTP ${error.status}): ${error.message}`),
      h('a', { href: lastListHash() }, 'Back to the workloads')));
  }

  load();
  return {
    refresh() { if (!inFlight) load(true); },
    dispose() { inFlight?.abort(); },
  };
}
