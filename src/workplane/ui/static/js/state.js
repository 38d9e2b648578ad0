// A view's state in the URL fragment: read it, and write it back so the view can be bookmarked.

/** Replace (typing in a search box) or push (a deliberate change: filter, sort, page) the fragment. */
export function writeHash(path, params, { push = true } = {}) {
  const query = params.toString();
  const hash = `#/${path}${query ? `?${query}` : ''}`;
  if (path === 'workloads') rememberList(hash);
  if (hash === location.hash) return;
  if (push) history.pushState(null, '', hash);
  else history.replaceState(null, '', hash);
}

// The workloads list as last seen, so "back to the list" keeps its filters, sort and page.
let listHash = '#/workloads';
export const lastListHash = () => listHash;
export function rememberList(hash) {
  listHash = hash;
}
