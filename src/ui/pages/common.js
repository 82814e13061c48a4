// common.js - small helpers the operator pages share (database, leases,
// tokens, policies, auth, audit). Everything builds DOM through ctx.h, so
// text always lands in text nodes; nothing here touches innerHTML.

// Marks el as page `id`, not yet ready, and empties it.
export function begin(el, id) {
  el.dataset.page = id;
  el.dataset.ready = '0';
  el.replaceChildren();
}

// Tells tests (and screen readers, via aria-busy) the page has loaded.
export function ready(el) {
  el.dataset.ready = '1';
  el.removeAttribute('aria-busy');
}

// Route segments arrive URL-encoded or not depending on the browser; a
// second decode of an already decoded safe segment is a no-op.
export function segments(rest) {
  return (rest || []).filter((s) => s !== '').map((s) => {
    try { return decodeURIComponent(s); } catch (e) { return s; }
  });
}

// '#/page/a/b' with every part encoded, so '/' inside a part survives.
export function route(page, ...parts) {
  return '#/' + [page, ...parts.map((p) => encodeURIComponent(p))].join('/');
}

export function on(node, event, fn) {
  node.addEventListener(event, fn);
  return node;
}

// A form whose submit (button click or Enter) runs fn without reloading.
export function form(ctx, id, fn, ...children) {
  const f = ctx.h('form', { id, class: 'form' }, ...children);
  return on(f, 'submit', (ev) => { ev.preventDefault(); fn(ev); });
}

// A labelled control: <div class="field"><label for=id>..</label>control</div>.
export function field(ctx, label, control) {
  return ctx.h('div', { class: 'field' },
    ctx.h('label', { for: control.id }, label), control);
}

export function input(ctx, id, attrs = {}) {
  return ctx.h('input', { id, name: id, type: 'text', autocomplete: 'off', ...attrs });
}

export function select(ctx, id, options, value) {
  const s = ctx.h('select', { id, name: id },
    ...options.map((o) => ctx.h('option', { value: o }, o)));
  if (value !== undefined) s.value = value;
  return s;
}

export function button(ctx, id, label, fn, attrs = {}) {
  const b = ctx.h('button', id ? { id, type: 'button', ...attrs } : { type: 'button', ...attrs }, label);
  if (fn) on(b, 'click', fn);
  return b;
}

export function submit(ctx, id, label) {
  return ctx.h('button', { id, type: 'submit' }, label);
}

export function link(ctx, href, text, attrs = {}) {
  return ctx.h('a', { href, ...attrs }, text);
}

// A region for one action's result or error; show() replaces its content.
export function outlet(ctx, id) {
  const box = ctx.h('div', { id, class: 'outlet', 'aria-live': 'polite' });
  return {
    node: box,
    clear: () => box.replaceChildren(),
    show: (...nodes) => box.replaceChildren(...nodes),
    error: (err) => { box.replaceChildren(); ctx.showError(box, err); },
  };
}

// Runs fn with the button disabled so a double press sends one request;
// a button fn locked for good (lock()) stays disabled.
export async function busy(btn, fn) {
  if (btn) btn.disabled = true;
  try { return await fn(); } finally { if (btn && !btn.dataset.locked) btn.disabled = false; }
}

export function lock(btn) {
  btn.dataset.locked = '1';
  btn.disabled = true;
}

// A definition list of [label, value] pairs; values are strings or Elements.
export function details(ctx, id, pairs) {
  const dl = ctx.h('dl', { id, class: 'facts' });
  for (const [k, v] of pairs) {
    dl.append(ctx.h('dt', {}, k), ctx.h('dd', {}, v == null ? '' : valueNode(ctx, v)));
  }
  return dl;
}

// Strings and numbers as text; arrays joined; objects as JSON text.
export function valueNode(ctx, v) {
  if (v instanceof Element) return v;
  if (Array.isArray(v)) return v.map(String).join(', ');
  if (v !== null && typeof v === 'object') return JSON.stringify(v);
  return String(v);
}

export function section(ctx, title, ...children) {
  return ctx.h('section', { class: 'panel' }, ctx.h('h2', {}, title), ...children);
}

// "a, b ,c" -> ['a','b','c']
export function splitList(s) {
  return String(s || '').split(',').map((x) => x.trim()).filter((x) => x !== '');
}

// 3725 -> "1h2m5s", as Vault's CLI prints durations.
export function duration(sec) {
  let s = Math.max(0, Math.floor(Number(sec) || 0));
  if (s === 0) return '0s';
  const h = Math.floor(s / 3600); s -= h * 3600;
  const m = Math.floor(s / 60); s -= m * 60;
  return (h ? h + 'h' : '') + (m ? m + 'm' : '') + (s ? s + 's' : '');
}

// The data of a Vault envelope, or {} for a 204.
export function data(reply) {
  return (reply && reply.data) || {};
}

// LIST that answers [] for a 404 (Vault's "nothing here").
export async function listKeys(ctx, path) {
  try {
    return data(await ctx.api('LIST', path)).keys || [];
  } catch (err) {
    if (err && err.status === 404) return [];
    throw err;
  }
}

// A loading failure: the server's words in the page, and the page is ready.
export function failed(ctx, el, err) {
  ctx.showError(el, err);
  ready(el);
}
