// The shell: sign-in, the hash router, and the poll that keeps open pages alive.
//
// Every view is addressed by the URL fragment (#/workloads?filter=...&sort=...), so any view can be
// bookmarked and the back button walks through filter, sort and page changes. The server serves only
// "/" and "/ui/...", never a fragment, so the dashboard cannot shadow an API path.

import * as api from './api.js';
import { fill, h } from './dom.js';
import * as overview from './overview.js';
import { rememberList } from './state.js';
import * as workload from './workload.js';
import * as workloads from './workloads.js';

const POLL_MS = 5000; // modest: a few small indexed queries per page every 5 s
const view = document.getElementById('view');
const topbar = document.querySelector('.topbar');
let current = null; // {name, instance}
let pendingMessage = '';

/** #/workloads/abc?x=1 → {path: ['workloads', 'abc'], params: URLSearchParams} */
export function parseHash(hash = location.hash) {
  const raw = hash.replace(/^#\/?/, '');
  const cut = raw.indexOf('?');
  const [path, query] = cut < 0 ? [raw, ''] : [raw.slice(0, cut), raw.slice(cut + 1)];
  return { path: path.split('/').filter(Boolean).map(decodeURIComponent), params: new URLSearchParams(query) };
}

// The views are imported up front: all of them together are a few tens of kilobytes, fetched in
// parallel (index.html preloads them), and a page switch then never waits for the network.
const routes = {
  workloads: (route) => (route.path.length > 1 ? ['workload', workload] : ['workloads', workloads]),
  overview: () => ['overview', overview],
};

function route() {
  performance.mark('route-start');
  if (!api.signedIn()) {
    showSignIn();
    return;
  }
  const parsed = parseHash();
  const pick = routes[parsed.path[0]];
  if (!pick) {
    location.replace('#/workloads');
    return;
  }
  const [name, module] = pick(parsed);
  if (name === 'workloads') rememberList(location.hash);
  showShell(name);
  // The same view with new parameters (back/forward through filters or pages): update in place.
  if (current && current.name === name && current.instance.update && current.key === parsed.path.join('/')) {
    current.instance.update(parsed);
    return;
  }
  if (current) current.instance.dispose?.();
  fill(view);
  current = { name, key: parsed.path.join('/'), instance: module.mount(view, parsed) };
}

function showShell(name) {
  topbar.hidden = false;
  topbar.querySelector('.who').textContent = api.clientId();
  for (const link of topbar.querySelectorAll('[data-nav]')) {
    if (link.dataset.nav === (name === 'workload' ? 'workloads' : name)) link.setAttribute('aria-current', 'page');
    else link.removeAttribute('aria-current');
  }
}

function showSignIn() {
  if (current) current.instance.dispose?.();
  current = null;
  topbar.hidden = true;
  document.title = 'Sign in · workplane';
  const message = h('div', { class: 'message error', role: 'alert', hidden: !pendingMessage }, pendingMessage);
  pendingMessage = '';
  const idInput = h('input', { id: 'client-id', name: 'clientId', autocomplete: 'username', required: true, spellcheck: 'false' });
  const secretInput = h('input', { id: 'client-secret', name: 'clientSecret', type: 'password', autocomplete: 'current-password', required: true });
  const submit = h('button', { type: 'submit', class: 'primary' }, 'Sign in');
  const form = h('form', { class: 'signin-card', onSubmit: onSubmit },
    h('div', { class: 'signin-brand' }, h('img', { src: '/ui/favicon.svg', alt: '', width: 36, height: 36 }),
      h('div', {}, h('h1', {}, 'workplane'), h('p', {}, 'GPU workloads control plane'))),
    h('p', { class: 'hint' }, 'Sign in with an access key (client id and secret). The administrator key is in ',
      h('code', {}, '<data-dir>/admin-credentials.env'), '.'),
    message,
    h('label', { for: 'client-id' }, 'Client id'), idInput,
    h('label', { for: 'client-secret' }, 'Client secret'), secretInput,
    submit);

  async function onSubmit(event) {
    event.preventDefault();
    submit.disabled = true;
    submit.textContent = 'Signing in…';
    message.hidden = true;
    try {
      await api.signIn(idInput.value.trim(), secretInput.value);
      if (!parseHash().path.length || parseHash().path[0] === 'signin') location.hash = '#/workloads';
      else route();
    } catch (error) {
      message.textContent = error.status === 401
        ? `Wrong access key: ${error.message}. Check the client id and secret.`
        : `Sign-in failed${error.status ? ` (HTTP ${error.status})` : ''}: ${error.message}`;
      message.hidden = false;
      secretInput.select();
    } finally {
      submit.disabled = false;
      submit.textContent = 'Sign in';
    }
  }

  fill(view, h('div', { class: 'signin' }, form));
  idInput.focus();
}

api.onSignedOut((message) => {
  pendingMessage = message;
  route();
});

topbar.querySelector('.signout').addEventListener('click', () => {
  api.signOut();
  pendingMessage = '';
  route();
});

// Alive: refresh the open view every few seconds, but only while the tab is visible; catch up at
// once when it becomes visible again.
setInterval(() => {
  if (document.visibilityState === 'visible' && current) current.instance.refresh?.();
}, POLL_MS);
document.addEventListener('visibilitychange', () => {
  if (document.visibilityState === 'visible' && current) current.instance.refresh?.();
});

window.addEventListener('hashchange', route);
route();
