// The Workloads page: one page of the server's answer at a time (offset/limit), the total from
// /workloads/count, sorting and filtering done by the server. Nothing here ever loads the whole list,
// which is what keeps it fast on a million workloads.

import * as api from './api.js';
import { clusterName, errorMessage, fill, h, learnClusterNames, markRendered } from './dom.js';
import { FIELDS, fieldInfo, formatTerm, operatorLabel, operatorsFor, parseTerm } from './filters.js';
import { duration, num, PHASES, phaseClass, when } from './format.js';
import { writeHash } from './state.js';

const PAGE_SIZES = [25, 50, 100, 200];
const SEARCH_DELAY_MS = 300;

const shortDateParts = new Intl.DateTimeFormat('en-GB', {
  month: 'short', day: '2-digit', hour: '2-digit', minute: '2-digit', hour12: false, timeZone: 'UTC',
});
/** "14 Nov 22:51" (UTC; the full time is the cell's title): as narrow as a date and time can be read. */
const shortDate = {
  format(date) {
    const part = Object.fromEntries(shortDateParts.formatToParts(date).map(({ type, value }) => [type, value]));
    return `${part.day} ${part.month.slice(0, 3)} ${part.hour}:${part.minute}`;
  },
};

// [header, sortBy field (null: the API cannot sort on it), cell]
const COLUMNS = [
  ['Name', 'name', (w) => h('a', { href: `#/workloads/${w.id}`, tabindex: -1, class: 'name' }, w.name), 'wrap'],
  ['Type', 'type', (w) => w.type],
  ['Phase', 'phase', (w) => h('span', { class: phaseClass(w.phase) }, w.phase)],
  ['Project', 'projectName', (w) => w.projectName, 'wrap'],
  ['Department', 'departmentName', (w) => w.departmentName],
  ['Cluster', 'clusterId', (w) => h('span', { title: w.clusterId, dataset: { cluster: w.clusterId } }, clusterName(w.clusterId))],
  ['Category', 'category', (w) => w.category ?? '—'],
  ['Priority', 'priority', (w) => (w.priorityClassName
    ? h('span', { title: `${w.priorityClassName} (priority ${w.priority ?? '—'})` }, w.priorityClassName) : '—')],
  ['Pods', null, (w) => `${w.runningPods ?? 0} / ${w.requestedPods?.number ?? '—'}`, 'num'],
  ['GPUs', 'allocatedGPU', (w) => num(w.allocatedResources?.gpu ?? 0), 'num'],
  ['Created', 'createdAt', (w) => h('time', { datetime: w.createdAt, title: when(w.createdAt) }, shortDate.format(new Date(w.createdAt)))],
  ['Pending', 'totalPendingTimeSeconds', (w) => duration(w.totalPendingTimeSeconds), 'num'],
  ['Running', 'totalRunningTimeSeconds', (w) => duration(w.totalRunningTimeSeconds), 'num'],
];

const DELETED_COLUMN = ['Deleted', 'deletedAt', (w) => h('time', { datetime: w.deletedAt, title: when(w.deletedAt) }, w.deletedAt ? shortDate.format(new Date(w.deletedAt)) : '—')];

/** The columns for a state: deleted workloads also show when they were deleted. */
function columnsFor(state) {
  if (!state.deleted) return COLUMNS;
  const at = COLUMNS.findIndex(([, field]) => field === 'createdAt') + 1;
  return [...COLUMNS.slice(0, at), DELETED_COLUMN, ...COLUMNS.slice(at)];
}

/** The view's state, all of it in the URL. */
function readState(params) {
  const limit = Number(params.get('limit'));
  const terms = params.getAll('filter');
  return {
    filters: terms.map(parseTerm).filter(Boolean),
    // Terms of the address that are no filter at all (a hand-edited or truncated link): not sent, and
    // the page says so rather than showing more than was asked for without a word.
    dropped: terms.filter((term) => !parseTerm(term)),
    search: params.get('q') || '',
    sort: params.get('sort') || '',
    order: params.get('order') === 'desc' ? 'desc' : 'asc',
    offset: Math.max(0, Number(params.get('offset')) || 0),
    limit: PAGE_SIZES.includes(limit) ? limit : 50,
    deleted: params.get('deleted') === '1',
  };
}

function stateParams(state) {
  const params = new URLSearchParams();
  for (const term of state.filters) params.append('filter', formatTerm(term));
  if (state.search) params.set('q', state.search);
  if (state.sort) params.set('sort', state.sort);
  if (state.sort && state.order === 'desc') params.set('order', 'desc');
  if (state.offset) params.set('offset', String(state.offset));
  if (state.limit !== 50) params.set('limit', String(state.limit));
  if (state.deleted) params.set('deleted', '1');
  return params;
}

/** The API query for a state: exactly what the table shows. */
export function apiQuery(state) {
  return {
    deleted: state.deleted ? 'true' : undefined,
    filterBy: state.filters.map(formatTerm),
    search: state.search.trim() || undefined,
  };
}

export function mount(root, route) {
  let state = readState(route.params);
  let inFlight = null;
  let firstRender = true;
  let total = null;
  let totalKey = null;

  const countLabel = h('span', { class: 'count', 'aria-live': 'polite' });
  const search = h('input', {
    type: 'search', class: 'search', placeholder: 'Search name, project, department, type, phase, image…',
    'aria-label': 'Search workloads', value: state.search,
  });
  const deletedToggle = h('input', { type: 'checkbox', id: 'show-deleted' });
  const chips = h('div', { class: 'chips', 'aria-label': 'Active filters' });
  const slot = h('div', { class: 'message-slot' });
  const notice = h('div', { class: 'message-slot' });
  const thead = h('thead');
  const tbody = h('tbody');
  const table = h('table', { class: 'grid workloads' }, h('caption', { class: 'visually-hidden' }, 'Workloads'), thead, tbody);
  const pager = h('nav', { class: 'pager', 'aria-label': 'Pages' });

  const fieldSelect = h('select', { 'aria-label': 'Filter field', class: 'field' },
    FIELDS.map(([name, label]) => h('option', { value: name }, label)));
  const opSelect = h('select', { 'aria-label': 'Filter operator', class: 'op' });
  const valueInput = h('input', { 'aria-label': 'Filter value', class: 'value', placeholder: 'value', list: 'filter-values', required: true });
  const valueList = h('datalist', { id: 'filter-values' });
  const addForm = h('form', { class: 'add-filter', onSubmit: addFilter },
    fieldSelect, opSelect, valueInput, valueList, h('button', { type: 'submit' }, 'Add filter'));

  function fillOperators() {
    const field = fieldSelect.value;
    const kept = opSelect.value;
    fill(opSelect, ...operatorsFor(field).map(([op, label]) => h('option', { value: op }, `${label}  ${op}`)));
    if ([...opSelect.options].some((o) => o.value === kept)) opSelect.value = kept;
    const kind = fieldInfo(field).kind;
    valueInput.placeholder = kind === 'time' ? '2024-05-01T12:00:00Z' : kind === 'number' ? 'number' : 'value';
    fill(valueList, ...(field === 'phase' ? PHASES : field === 'category' ? ['Build', 'Train', 'Deploy'] : [])
      .map((v) => h('option', { value: v })));
  }
  fieldSelect.addEventListener('change', fillOperators);
  fillOperators();

  function addFilter(event) {
    event.preventDefault();
    const value = valueInput.value.trim();
    if (!value) return;
    change({ filters: [...state.filters, { field: fieldSelect.value, op: opSelect.value, value }], offset: 0 });
    valueInput.value = '';
    valueInput.focus();
  }

  let searchTimer = null;
  search.addEventListener('input', () => {
    clearTimeout(searchTimer);
    searchTimer = setTimeout(() => change({ search: search.value, offset: 0 }, { push: false }), SEARCH_DELAY_MS);
  });
  search.addEventListener('keydown', (event) => {
    if (event.key === 'Enter') {
      clearTimeout(searchTimer);
      change({ search: search.value, offset: 0 });
    }
  });
  deletedToggle.addEventListener('change', () => change({ deleted: deletedToggle.checked, offset: 0 }));

  root.append(h('section', { class: 'page' },
    h('div', { class: 'page-head' }, h('h1', {}, 'Workloads'), countLabel),
    h('div', { class: 'toolbar' }, search,
      h('label', { class: 'toggle', for: 'show-deleted' }, deletedToggle, ' Deleted workloads')),
    h('div', { class: 'filter-bar' }, chips, addForm),
    notice,
    slot,
    h('div', { class: 'table-wrap' }, table),
    pager));

  tbody.addEventListener('keydown', (event) => {
    const row = event.target.closest('tr[data-id]');
    if (!row) return;
    if (event.key === 'Enter') open(row.dataset.id);
    else if (event.key === 'ArrowDown' && row.nextElementSibling) { event.preventDefault(); row.nextElementSibling.focus(); }
    else if (event.key === 'ArrowUp' && row.previousElementSibling) { event.preventDefault(); row.previousElementSibling.focus(); }
  });
  tbody.addEventListener('click', (event) => {
    const row = event.target.closest('tr[data-id]');
    if (row && !event.target.closest('a')) open(row.dataset.id);
  });

  function open(id) {
    location.hash = `#/workloads/${encodeURIComponent(id)}`;
  }

  function change(patch, { push = true } = {}) {
    state = { ...state, dropped: [], ...patch };
    writeHash('workloads', stateParams(state), { push });
    performance.mark('page-start');
    load('page-start');
  }

  function renderControls() {
    document.title = 'Workloads · workplane';
    if (document.activeElement !== search) search.value = state.search;
    deletedToggle.checked = state.deleted;
    fill(notice, state.dropped.length ? h('div', { class: 'message warning dropped-filters', role: 'status' },
      h('strong', {}, state.dropped.length === 1 ? 'A filter in the address was ignored' : `${state.dropped.length} filters in the address were ignored`),
      ' (a filter is a field, an operator such as == or =@, and a value, e.g. phase==Running): ',
      state.dropped.map((term, i) => [i ? ', ' : null, h('code', {}, term || '(empty)')]),
      '. The table shows the workloads without ', state.dropped.length === 1 ? 'it.' : 'them.') : null);
    fill(chips, ...state.filters.map((term, i) => {
      const label = `${fieldInfo(term.field).label} ${operatorLabel(term.op)} ${term.value}`;
      return h('span', { class: 'chip', title: formatTerm(term) },
        h('span', { class: 'chip-field' }, fieldInfo(term.field).label),
        h('span', { class: 'chip-op' }, operatorLabel(term.op)),
        h('span', { class: 'chip-value' }, term.value),
        h('button', {
          type: 'button', class: 'chip-remove', 'aria-label': `Remove filter ${label}`,
          onClick: () => change({ filters: state.filters.filter((_, j) => j !== i), offset: 0 }),
        }, '×'));
    }));
    if (state.filters.length > 1) {
      chips.append(h('button', { type: 'button', class: 'link', onClick: () => change({ filters: [], offset: 0 }) }, 'Clear all'));
    }
    // Each column's width is set by its class (app.css): the table is laid out to the page's width,
    // whatever the rows hold, and a cell too narrow for its text ends in an ellipsis (the full text in
    // its title), so no column ever hides behind a horizontal scroll.
    fill(thead, h('tr', {}, columnsFor(state).map(([label, field, , cls]) => {
      const classes = [cls, `col-${(field || label).toLowerCase()}`].filter(Boolean).join(' ');
      if (!field) return h('th', { scope: 'col', class: classes }, label);
      const active = state.sort === field;
      const sortState = active ? (state.order === 'desc' ? 'descending' : 'ascending') : null;
      return h('th', { scope: 'col', class: classes, 'aria-sort': sortState },
        h('button', {
          type: 'button', class: `sort${active ? ' active' : ''}`, dataset: { sort: field },
          onClick: () => change({ sort: field, order: active && state.order === 'asc' ? 'desc' : 'asc', offset: 0 }),
        }, label, h('span', { class: 'arrow', 'aria-hidden': 'true' }, active ? (state.order === 'desc' ? '▼' : '▲') : '↕')));
    })));
  }

  function renderRows(workloads) {
    if (!workloads.length) {
      fill(tbody, h('tr', {}, h('td', { colspan: columnsFor(state).length, class: 'empty' },
        state.filters.length || state.search ? 'No workloads match these filters.' : 'No workloads yet.')));
      return;
    }
    fill(tbody, ...workloads.map((w) => h('tr', { tabindex: 0, dataset: { id: w.id }, 'aria-label': `Workload ${w.name}` },
      columnsFor(state).map(([, , cell, cls]) => {
        const content = cell(w);
        return h('td', { class: cls, title: typeof content === 'string' ? content : null }, content);
      }))));
  }

  function renderPager(next) {
    const from = state.offset + 1;
    const shown = tbody.querySelectorAll('tr[data-id]').length;
    const to = state.offset + shown;
    const pages = total === null ? null : Math.max(1, Math.ceil(total / state.limit));
    const page = Math.floor(state.offset / state.limit) + 1;
    const size = h('select', { 'aria-label': 'Rows per page', onChange: (e) => change({ limit: Number(e.target.value), offset: 0 }) },
      PAGE_SIZES.map((n) => h('option', { value: n, selected: n === state.limit }, n)));
    fill(pager,
      h('span', { class: 'range' }, shown ? `${num(from)}–${num(to)}${total === null ? '' : ` of ${num(total)}`}` : ''),
      h('label', { class: 'size' }, 'Rows per page ', size),
      h('span', { class: 'pages' }, pages ? `Page ${num(page)} of ${num(pages)}` : ''),
      h('button', { type: 'button', class: 'first', disabled: state.offset === 0, onClick: () => change({ offset: 0 }) }, '« First'),
      h('button', { type: 'button', class: 'prev', disabled: state.offset === 0, onClick: () => change({ offset: Math.max(0, state.offset - state.limit) }) }, '‹ Previous'),
      h('button', { type: 'button', class: 'next', disabled: !next, onClick: () => change({ offset: next }) }, 'Next ›'));
  }

  async function load(mark = 'route-start', { quiet = false } = {}) {
    renderControls();
    inFlight?.abort();
    const controller = new AbortController();
    inFlight = controller;
    table.classList.add('busy');
    const query = apiQuery(state);
    // A total belongs to its query: never show the old one beside another query's rows.
    const queryKey = JSON.stringify(query);
    if (queryKey !== totalKey) {
      total = null;
      countLabel.textContent = '';
    }
    const listing = api.get('/workloads', {
      ...query, offset: state.offset, limit: state.limit,
      sortBy: state.sort || undefined, sortOrder: state.sort ? state.order : undefined,
    }, { signal: controller.signal });
    const counting = api.get('/workloads/count', query, { signal: controller.signal });
    counting.catch(() => {}); // a failed count is shown through the list's own failure
    try {
      const { body } = await listing;
      if (controller.signal.aborted) return;
      if (!quiet) fill(slot);
      renderRows(body.workloads);
      renderPager(body.next);
      table.classList.remove('busy');
      root.querySelector('.table-wrap').dataset.loaded = 'true';
      if (!quiet) markRendered(firstRender ? 'workloads' : 'workloads-page', mark);
      firstRender = false;
      counting.then(({ body: c }) => {
        if (controller.signal.aborted) return;
        total = c.count;
        totalKey = queryKey;
        countLabel.textContent = `${num(total)} ${state.deleted ? 'deleted ' : ''}workload${total === 1 ? '' : 's'}`;
        renderPager(body.next);
      }).catch((error) => { if (error.name !== 'AbortError') countLabel.textContent = ''; });
      // Cluster names are asked for once the rows are drawn (they must not delay them): redraw the
      // cells when they arrive.
      learnClusterNames(api.get).then((learnt) => {
        if (learnt && !controller.signal.aborted) {
          for (const cell of tbody.querySelectorAll('td span[data-cluster]')) cell.textContent = clusterName(cell.dataset.cluster);
        }
      });
    } catch (error) {
      if (error.name === 'AbortError') return;
      table.classList.remove('busy');
      fill(slot, errorMessage(error, 'Loading workloads'));
      if (!quiet) {
        renderRows([]);
        tbody.firstChild.firstChild.textContent = 'Nothing to show.';
        renderPager(undefined);
      }
    } finally {
      if (inFlight === controller) inFlight = null;
    }
  }

  load();

  return {
    update(next) {
      state = readState(next.params);
      load();
    },
    refresh() {
      // A poll never interrupts a load the person started.
      if (!inFlight) load('route-start', { quiet: true });
    },
    dispose() {
      inFlight?.abort();
      clearTimeout(searchTimer);
    },
  };
}
