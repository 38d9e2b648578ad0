// The API reference page (/api/docs): renders the server's own OpenAPI document (/api/openapi.json)
// as a page to read — operations grouped by tag, with their parameters, request bodies and responses,
// then the schemas they name. Everything is built from the document with text nodes (dom.js), so the
// page shows exactly what the server describes and nothing in it can inject markup.

import { h, fill } from './dom.js';

const METHODS = ['get', 'post', 'put', 'patch', 'delete'];
const SCHEMA_PREFIX = '#/components/';

async function load() {
  const root = document.getElementById('docs');
  let doc;
  try {
    const answer = await fetch('/api/openapi.json', { headers: { Accept: 'application/json' } });
    if (!answer.ok) throw new Error(`HTTP ${answer.status}`);
    doc = await answer.json();
  } catch (error) {
    fill(root, h('p', { class: 'message error', role: 'alert' },
      `The API description could not be loaded: ${error.message}`));
    return;
  }
  render(root, doc);
  // The address may name an operation or a schema: go there now that it exists.
  if (location.hash) document.getElementById(decodeURIComponent(location.hash.slice(1)))?.scrollIntoView();
  document.body.dataset.rendered = 'true';
}

/** Follows a local `$ref` (`#/components/parameters/limit`) to what it names. */
function resolve(doc, node) {
  let found = node;
  for (let hops = 0; found && found.$ref && hops < 10; hops += 1) {
    if (!found.$ref.startsWith('#/')) return found;
    found = found.$ref.slice(2).split('/').reduce((at, key) => at?.[key], doc);
  }
  return found || {};
}

/** Operations grouped by their first tag, tags in the document's order of first use. */
function groups(doc) {
  const byTag = new Map();
  for (const [path, item] of Object.entries(doc.paths || {})) {
    for (const method of METHODS) {
      const op = item[method];
      if (!op) continue;
      const tag = (op.tags && op.tags[0]) || 'Other';
      if (!byTag.has(tag)) byTag.set(tag, []);
      byTag.get(tag).push({
        method, path, op, parameters: [...(item.parameters || []), ...(op.parameters || [])],
      });
    }
  }
  return byTag;
}

function slug(text) {
  return text.toLowerCase().replace(/[^a-z0-9]+/g, '-').replace(/^-|-$/g, '');
}

function operationId(entry) {
  return `op-${entry.op.operationId || slug(`${entry.method} ${entry.path}`)}`;
}

function render(root, doc) {
  const info = doc.info || {};
  document.title = `${info.title || 'API'} ${info.version || ''} — API reference`;
  const byTag = groups(doc);
  const operations = [...byTag.values()].reduce((n, list) => n + list.length, 0);
  fill(document.querySelector('.docs-toc'),
    h('p', { class: 'toc-title' }, `${operations} operations`),
    [...byTag].map(([tag, entries]) => h('div', { class: 'toc-group' },
      h('a', { class: 'toc-tag', href: `#tag-${slug(tag)}` }, tag),
      h('ul', {}, entries.map((entry) => h('li', {},
        h('a', { href: `#${operationId(entry)}` },
          h('span', { class: `method method-${entry.method}` }, entry.method.toUpperCase()), ' ',
          h('code', {}, entry.path))))))),
    h('a', { class: 'toc-tag', href: '#schemas' }, 'Schemas'));
  fill(root,
    h('header', { class: 'docs-head' },
      h('h1', {}, info.title || 'API', ' ', h('span', { class: 'version' }, info.version || '')),
      info.description ? h('p', { class: 'description' }, info.description) : null,
      h('p', { class: 'muted' },
        `OpenAPI ${doc.openapi || ''}. Every operation needs a bearer token from POST /api/v1/token `
        + '(Authorization: Bearer …) unless it is marked "no token". The same description as JSON: ',
        h('a', { href: '/api/openapi.json' }, '/api/openapi.json'), '.')),
    [...byTag].map(([tag, entries]) => h('section', { class: 'tag', id: `tag-${slug(tag)}` },
      h('h2', {}, tag),
      entries.map((entry) => renderOperation(doc, entry)))),
    renderSchemas(doc));
}

function renderOperation(doc, { method, path, op, parameters }) {
  const open = Array.isArray(op.security) && op.security.length === 0;
  const body = op.requestBody ? resolve(doc, op.requestBody) : null;
  return h('article', { class: 'operation', id: operationId({ method, path, op }) },
    h('h3', {},
      h('span', { class: `method method-${method}` }, method.toUpperCase()), ' ',
      h('code', { class: 'path' }, path),
      open ? h('span', { class: 'badge' }, 'no token') : null),
    op.summary ? h('p', { class: 'summary' }, op.summary) : null,
    op.description && op.description !== op.summary ? h('p', { class: 'description' }, op.description) : null,
    op.operationId ? h('p', { class: 'muted op-id' }, 'operationId ', h('code', {}, op.operationId)) : null,
    parameters.length ? [
      h('h4', {}, 'Parameters'),
      table(['Name', 'In', 'Type', 'Description'], parameters.map((p) => resolve(doc, p)).map((p) => [
        [h('code', {}, p.name), p.required ? h('span', { class: 'required', title: 'required' }, ' required') : null],
        p.in,
        schemaText(doc, p.schema || {}),
        p.description || '',
      ]), 'parameters'),
    ] : null,
    body ? [
      h('h4', {}, 'Request body', body.required ? h('span', { class: 'required' }, ' required') : null),
      body.description ? h('p', { class: 'description' }, body.description) : null,
      table(['Content type', 'Schema'], Object.entries(body.content || {}).map(([type, media]) => [
        h('code', {}, type), schemaText(doc, media.schema || {}),
      ]), 'request-body'),
    ] : null,
    h('h4', {}, 'Responses'),
    table(['Status', 'Description', 'Body'], Object.entries(op.responses || {}).map(([status, raw]) => {
      const answer = resolve(doc, raw);
      const content = Object.entries(answer.content || {});
      return [
        h('span', { class: `status status-${status[0]}` }, status),
        answer.description || '',
        content.length
          ? content.map(([type, media]) => h('div', {}, h('code', {}, type), ' ', schemaText(doc, media.schema || {})))
          : h('span', { class: 'muted' }, 'none'),
      ];
    }), 'responses'));
}

/** A schema in a few words: a link to a named schema, a type with its format and limits, an enum. */
function schemaText(doc, schema) {
  if (schema.$ref) {
    const name = schema.$ref.startsWith(SCHEMA_PREFIX) ? schema.$ref.split('/').pop() : schema.$ref;
    return h('a', { href: `#schema-${name}`, class: 'schema-ref' }, name);
  }
  const alternatives = schema.anyOf || schema.oneOf || schema.allOf;
  if (alternatives) {
    const parts = alternatives.filter((s) => s.type !== 'null');
    const joiner = schema.allOf ? ' & ' : ' | ';
    return h('span', {}, parts.map((s, i) => [i ? joiner : null, schemaText(doc, s)]),
      parts.length < alternatives.length ? ' (or null)' : null);
  }
  if (schema.type === 'array') return h('span', {}, 'array of ', schemaText(doc, schema.items || {}));
  const words = [schema.type || 'any'];
  if (schema.format) words.push(`(${schema.format})`);
  const limits = [];
  if (schema.minimum !== undefined) limits.push(`≥ ${schema.minimum}`);
  if (schema.maximum !== undefined) limits.push(`≤ ${schema.maximum}`);
  if (schema.minLength !== undefined) limits.push(`length ≥ ${schema.minLength}`);
  if (schema.maxLength !== undefined) limits.push(`length ≤ ${schema.maxLength}`);
  if (schema.pattern) limits.push(`pattern ${schema.pattern}`);
  if (schema.default !== undefined) limits.push(`default ${JSON.stringify(schema.default)}`);
  return h('span', {}, words.join(' '),
    schema.enum ? [': one of ', schema.enum.map((v, i) => [i ? ', ' : null, h('code', {}, String(v))])] : null,
    limits.length ? h('span', { class: 'muted' }, ` (${limits.join(', ')})`) : null);
}

function renderSchemas(doc) {
  const schemas = Object.entries((doc.components && doc.components.schemas) || {})
    .sort(([a], [b]) => a.localeCompare(b));
  return h('section', { class: 'tag schemas', id: 'schemas' },
    h('h2', {}, 'Schemas'),
    schemas.map(([name, schema]) => {
      const required = new Set(schema.required || []);
      const properties = Object.entries(schema.properties || {});
      return h('details', { class: 'schema', id: `schema-${name}` },
        h('summary', {}, h('code', {}, name), schema.description ? h('span', { class: 'muted' }, ` — ${firstLine(schema.description)}`) : null),
        properties.length
          ? table(['Property', 'Type', 'Description'], properties.map(([prop, value]) => [
            [h('code', {}, prop), required.has(prop) ? h('span', { class: 'required' }, ' required') : null],
            schemaText(doc, value),
            value.description || '',
          ]), 'properties')
          : h('p', {}, schemaText(doc, schema)));
    }));
}

function firstLine(text) {
  return text.split('\n')[0];
}

function table(headings, rows, kind) {
  return h('table', { class: `docs-table ${kind}` },
    h('thead', {}, h('tr', {}, headings.map((text) => h('th', { scope: 'col' }, text)))),
    h('tbody', {}, rows.map((cells) => h('tr', {}, cells.map((cell) => h('td', {}, cell))))));
}

// Opening a schema link unfolds the schema it names.
window.addEventListener('hashchange', () => {
  const target = document.getElementById(decodeURIComponent(location.hash.slice(1)));
  if (target instanceof HTMLDetailsElement) target.open = true;
});

load();
