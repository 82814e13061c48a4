// auth.js - auth methods (sys/auth): the list, enabling one at a path, and
// disabling one behind a confirmation (that revokes every token it issued).
import {
  begin, ready, form, field, input, select, button, submit, outlet, busy,
  section, data, failed,
} from './common.js';

const ID = 'auth';
// The methods Coffer ships (lua/auth/*.lua); the field also takes others.
const TYPES = ['userpass', 'approle', 'jwt', 'kubernetes'];

// A path becomes part of an element id: keep [A-Za-z0-9_-] only.
function idPart(path) {
  return path.replace(/\/$/, '').replace(/[^A-Za-z0-9_-]/g, '_');
}

async function renderList(el, ctx, box, out) {
  const methods = data(await ctx.api('GET', 'sys/auth'));
  const rows = Object.keys(methods).sort().map((p) => {
    const m = methods[p] || {};
    const dis = p === 'token/' ? '' : button(ctx, 'auth-disable-' + idPart(p), 'Disable', () => busy(dis, async () => {
      out.clear();
      if (!await ctx.confirm('Disable the auth method at "' + p + '"? Every token it issued is revoked.')) return;
      try {
        await ctx.api('DELETE', 'sys/auth/' + p.replace(/\/$/, ''));
        await renderList(el, ctx, box, out);
        out.show(ctx.h('p', { class: 'notice', role: 'status' }, 'Disabled ' + p + '.'));
      } catch (err) { out.error(err); }
    }), { class: 'danger', 'aria-label': 'Disable ' + p });
    return {
      path: ctx.h('code', { class: 'auth-path' }, p), type: m.type || '',
      description: m.description || '', accessor: ctx.h('code', {}, m.accessor || ''), actions: dis,
    };
  });
  box.replaceChildren(ctx.table([{ key: 'path', label: 'Path' }, { key: 'type', label: 'Type' },
    { key: 'description', label: 'Description' }, { key: 'accessor', label: 'Accessor' },
    { key: 'actions', label: '' }], rows));
}

function enableForm(el, ctx, box, out) {
  const type = select(ctx, 'auth-enable-type', TYPES, 'userpass');
  const path = input(ctx, 'auth-enable-path', { placeholder: 'defaults to the type' });
  const desc = input(ctx, 'auth-enable-description');
  const go = submit(ctx, 'auth-enable-submit', 'Enable');
  return form(ctx, 'auth-enable', () => busy(go, async () => {
    out.clear();
    const p = (path.value.trim() || type.value).replace(/^\/+|\/+$/g, '');
    const body = { type: type.value };
    if (desc.value.trim()) body.description = desc.value.trim();
    try {
      await ctx.api('POST', 'sys/auth/' + p, body);
      await renderList(el, ctx, box, out);
      out.show(ctx.h('p', { class: 'notice', role: 'status' }, 'Enabled ' + type.value + ' at ' + p + '/.'));
    } catch (err) { out.error(err); }
  }), field(ctx, 'Type', type), field(ctx, 'Path', path), field(ctx, 'Description', desc), go);
}

export default {
  id: ID,
  title: 'Auth methods',
  render: async (el, ctx) => {
    begin(el, ID);
    const box = ctx.h('div', { id: 'auth-list' });
    const out = outlet(ctx, 'auth-result');
    try {
      el.append(ctx.h('h1', {}, 'Auth methods'), out.node, box,
        section(ctx, 'Enable an auth method', enableForm(el, ctx, box, out)));
      await renderList(el, ctx, box, out);
      ready(el);
    } catch (err) { failed(ctx, el, err); }
  },
};
