// app.js - the shell of Coffer's web UI: hash router, navigation, the ctx
// every page gets (the contract of issue 15, section 2), the in-page
// confirm dialog, and the token kept in sessionStorage only.
//
// A page is a module src/ui/pages/<id>.js exporting
//   { id, title, render: async (el, ctx, rest) => {...} }
// loaded on first use; a page that fails to load or throws shows its error
// in its own section and nowhere else. Text always goes into text nodes
// (ctx.h); nothing here writes innerHTML, so server strings cannot become
// markup.

// The pages of ui-core (first) and the operator pages, in nav order.
const CORE = ['login', 'seal', 'secrets'];
export const PAGES = ['database', 'leases', 'tokens', 'policies', 'auth', 'audit'];
const TITLES = {
  login: 'Log in', seal: 'Seal', secrets: 'Secrets', database: 'Database',
  leases: 'Leases', tokens: 'Tokens', policies: 'Policies', auth: 'Auth methods',
  audit: 'Audit',
};
const TOKEN_KEY = 'coffer.token';

// A non-2xx answer: status and the server's error strings, verbatim.
export class ApiError extends Error {
  constructor(status, errors) {
    super(errors.length ? errors.join('\n') : 'HTTP ' + status);
    this.name = 'ApiError';
    this.status = status;
    this.errors = errors;
  }
}

function token() {
  return sessionStorage.getItem(TOKEN_KEY) || '';
}

function setToken(t) {
  if (t) sessionStorage.setItem(TOKEN_KEY, t);
  else sessionStorage.removeItem(TOKEN_KEY);
  updateChrome();
}

// Whether a path has a '.' or '..' segment, plain or percent-encoded:
// the browser would resolve it before sending, so a crafted link (its
// hash becomes part of a path) could point a request at another path.
function hasDotSegment(path) {
  return path.split('?')[0].split('/').some((seg) => {
    let s = seg;
    try { s = decodeURIComponent(seg); } catch (e) { return true; }
    return s === '.' || s === '..';
  });
}

// path is relative to /v1/; 'LIST' is GET with ?list=true (as Vault's CLI).
async function api(method, path, body) {
  let m = String(method).toUpperCase();
  let url = '/v1/' + String(path).replace(/^\/+/, '');
  if (hasDotSegment(url)) {
    throw new ApiError(400, ['refused: the path "' + path + '" has a "." or ".." segment']);
  }
  if (m === 'LIST') {
    m = 'GET';
    url += (url.includes('?') ? '&' : '?') + 'list=true';
  }
  const headers = {};
  const t = token();
  if (t) headers['X-Vault-Token'] = t;
  const init = { method: m, headers, credentials: 'omit', cache: 'no-store' };
  if (body !== undefined && body !== null) {
    headers['Content-Type'] = m === 'PATCH' ? 'application/merge-patch+json'
      : 'application/json';
    init.body = JSON.stringify(body);
  }
  const resp = await fetch(url, init);
  const text = await resp.text();
  let json = null;
  if (text !== '') {
    try { json = JSON.parse(text); } catch (e) { json = null; }
  }
  if (!resp.ok) {
    let errors = [];
    if (json && Array.isArray(json.errors)) errors = json.errors.map(String);
    else if (text !== '') errors = [text];
    const err = new ApiError(resp.status, errors);
    if (json && Array.isArray(json.warnings)) err.warnings = json.warnings;
    if (json) err.body = json;
    throw err;
  }
  if (resp.status === 204 || text === '') return null;
  return json;
}

// Attributes that are DOM properties or booleans rather than plain strings.
const BOOL_ATTRS = new Set(['disabled', 'checked', 'hidden', 'required', 'readonly',
  'selected', 'multiple', 'autofocus', 'open']);

function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  let value;
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null) continue;
    if (k.startsWith('on') && typeof v === 'function') {
      el.addEventListener(k.slice(2).toLowerCase(), v);
    } else if (k === 'class') {
      el.className = v;
    } else if (k === 'for') {
      el.htmlFor = v;
    } else if (k === 'value') {
      value = v; // after the children: a <select> needs its options first
    } else if (k === 'dataset' && typeof v === 'object') {
      Object.assign(el.dataset, v);
    } else if (BOOL_ATTRS.has(k)) {
      if (v) el.setAttribute(k, '');
      if (k === 'checked' || k === 'selected') el[k] = !!v;
    } else {
      el.setAttribute(k, String(v));
    }
  }
  append(el, children);
  if (value !== undefined) el.value = value;
  return el;
}

function append(el, children) {
  for (const c of children) {
    if (c === undefined || c === null || c === false) continue;
    if (Array.isArray(c)) append(el, c);
    else if (c instanceof Node) el.appendChild(c);
    else el.appendChild(document.createTextNode(String(c)));
  }
}

// The server's error strings verbatim, each in its own line.
function showError(el, err) {
  let lines;
  if (err instanceof ApiError) {
    lines = err.errors.length ? err.errors : ['HTTP ' + err.status];
  } else {
    lines = [err && err.message ? err.message : String(err)];
  }
  const box = h('div', { class: 'error', role: 'alert' },
    ...lines.map((l) => h('pre', { class: 'error-text' }, l)));
  if (err instanceof ApiError && err.warnings && err.warnings.length) {
    box.appendChild(h('ul', { class: 'warnings' }, ...err.warnings.map((w) => h('li', {}, w))));
  }
  el.appendChild(box);
  return box;
}

function navigate(hash) {
  if (location.hash === hash) route();
  else location.hash = hash;
}

// An in-page modal (<dialog>): focus stays inside, Escape cancels, Enter on
// a button presses it. Resolves true only for the confirm button.
function confirmDialog(message, opts = {}) {
  return new Promise((resolve) => {
    const root = document.getElementById('dialog-root');
    const opener = document.activeElement;
    const ok = h('button', { type: 'button', id: 'confirm-ok', class: 'danger' },
      opts.confirmLabel || 'Confirm');
    const cancel = h('button', { type: 'button', id: 'confirm-cancel' }, 'Cancel');
    const dlg = h('dialog', { class: 'confirm', 'aria-labelledby': 'confirm-msg' },
      h('p', { id: 'confirm-msg' }, message),
      h('div', { class: 'buttons' }, cancel, ok));
    let answered = false;
    const finish = (v) => {
      if (answered) return;
      answered = true;
      if (dlg.open) dlg.close();
      dlg.remove();
      if (opener && opener.focus && document.contains(opener)) opener.focus();
      resolve(v);
    };
    ok.addEventListener('click', () => finish(true));
    cancel.addEventListener('click', () => finish(false));
    dlg.addEventListener('cancel', (ev) => { ev.preventDefault(); finish(false); });
    dlg.addEventListener('close', () => finish(false));
    root.appendChild(dlg);
    dlg.showModal();
    cancel.focus();
  });
}

function copyButton(text, label = 'Copy') {
  const b = h('button', { type: 'button', class: 'copy' }, label);
  b.addEventListener('click', async () => {
    let done = false;
    try {
      await navigator.clipboard.writeText(text);
      done = true;
    } catch (e) {
      const ta = h('textarea', { class: 'offscreen', readonly: true, 'aria-hidden': 'true' });
      ta.value = text;
      document.body.appendChild(ta);
      ta.select();
      try { done = document.execCommand('copy'); } catch (e2) { done = false; }
      ta.remove();
    }
    b.textContent = done ? 'Copied' : 'Copy failed';
    setTimeout(() => { b.textContent = label; }, 1500);
  });
  return b;
}

// A table whose rows are reached with Tab (one stop) and the arrow keys.
function table(columns, rows) {
  const body = h('tbody', {});
  if (!rows || rows.length === 0) {
    body.appendChild(h('tr', {}, h('td', { colspan: String(columns.length), class: 'empty' },
      'No entries')));
  }
  (rows || []).forEach((r, i) => {
    const tr = h('tr', { tabindex: i === 0 ? '0' : '-1' },
      ...columns.map((c) => h('td', { 'data-label': c.label },
        r[c.key] === undefined || r[c.key] === null ? '' : r[c.key])));
    body.appendChild(tr);
  });
  body.addEventListener('keydown', (ev) => {
    const tr = ev.target.closest && ev.target.closest('tr');
    if (!tr || ev.target !== tr) return;
    let next = null;
    if (ev.key === 'ArrowDown') next = tr.nextElementSibling;
    else if (ev.key === 'ArrowUp') next = tr.previousElementSibling;
    else if (ev.key === 'Home') next = body.firstElementChild;
    else if (ev.key === 'End') next = body.lastElementChild;
    else if (ev.key === 'Enter') {
      const a = tr.querySelector('a[href], button');
      if (a) { a.click(); ev.preventDefault(); }
      return;
    }
    if (next) {
      tr.tabIndex = -1;
      next.tabIndex = 0;
      next.focus();
      ev.preventDefault();
    }
  });
  return h('table', { class: 'data' },
    h('thead', {}, h('tr', {}, ...columns.map((c) => h('th', { scope: 'col' }, c.label)))),
    body);
}

function logout() {
  setToken('');
  navigate('#/login');
}

export const ctx = {
  api, h, showError, navigate, token, confirm: confirmDialog, copyButton, table,
  setToken, logout, ApiError, pages: () => [...CORE, ...PAGES],
};

// ---------------------------------------------------------------- chrome --

function updateChrome() {
  const nav = document.getElementById('nav');
  const out = document.getElementById('logout');
  if (!nav) return;
  const current = (location.hash.replace(/^#\/?/, '').split('/')[0]) || '';
  const loggedIn = token() !== '';
  const ids = loggedIn ? [...CORE.filter((p) => p !== 'login'), ...PAGES] : ['login', 'seal'];
  nav.replaceChildren(h('ul', {}, ...ids.map((id) => h('li', {},
    h('a', { href: '#/' + id, id: 'nav-' + id, 'aria-current': id === current ? 'page' : null },
      TITLES[id] || id)))));
  out.hidden = !loggedIn;
}

// ---------------------------------------------------------------- router --

const modules = new Map();
let generation = 0;

function loadPage(id) {
  if (!modules.has(id)) {
    const p = import('./pages/' + id + '.js').then((m) => m.default);
    // A failed import is retried on the next visit, not cached.
    p.catch(() => modules.delete(id));
    modules.set(id, p);
  }
  return modules.get(id);
}

function parseHash() {
  const raw = location.hash.replace(/^#\/?/, '');
  const parts = raw === '' ? [] : raw.split('/');
  return { id: parts[0] || '', rest: parts.slice(1) };
}

async function route() {
  const gen = ++generation;
  let { id, rest } = parseHash();
  const known = [...CORE, ...PAGES];
  if (id === '' || !known.includes(id)) {
    if (id !== '') {
      renderMissing(id);
      updateChrome();
      return;
    }
    location.replace('#/' + (token() ? 'secrets' : 'login'));
    return;
  }
  if (!token() && id !== 'login' && id !== 'seal') {
    location.replace('#/login');
    return;
  }
  updateChrome();
  const main = document.getElementById('main');
  const el = h('section', { class: 'page', 'data-page': id, 'data-ready': '0', 'aria-busy': 'true' });
  main.replaceChildren(el);
  document.title = (TITLES[id] || id) + ' - Coffer';
  try {
    const page = await loadPage(id);
    if (gen !== generation) return;
    if (!page || typeof page.render !== 'function') {
      throw new Error('page module "' + id + '" has no render function');
    }
    await page.render(el, ctx, rest);
  } catch (err) {
    if (gen !== generation) return;
    el.replaceChildren(h('h1', {}, TITLES[id] || id));
    showError(el, err);
    el.dataset.page = id;
    el.dataset.ready = '1';
    el.removeAttribute('aria-busy');
  }
}

function renderMissing(id) {
  const main = document.getElementById('main');
  const el = h('section', { class: 'page', 'data-page': 'missing', 'data-ready': '1' },
    h('h1', {}, 'Not found'));
  showError(el, new Error('no page named "' + id + '"'));
  main.replaceChildren(el);
}

// If the server is sealed, every page but the seal page is useless.
async function start() {
  document.getElementById('logout').addEventListener('click', logout);
  window.addEventListener('hashchange', route);
  try {
    const st = await api('GET', 'sys/seal-status');
    if (st && st.sealed && parseHash().id !== 'seal') location.replace('#/seal');
  } catch (e) {
    // The page that loads next shows the server's error itself.
  }
  route();
}

start();
