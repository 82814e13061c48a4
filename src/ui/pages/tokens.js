// tokens.js - the calling token (lookup-self), the token accessors
// (auth/token/accessors, sudo) with lookup and revoke by accessor, and
// token creation showing the new token once: it is never stored or
// shown again after leaving the page.
import {
  begin, ready, form, field, input, button, submit, outlet, busy, details,
  section, splitList, duration, data, listKeys, failed,
} from './common.js';

const ID = 'tokens';

function tokenDetails(ctx, id, d) {
  return details(ctx, id, [
    ['Display name', d.display_name || ''],
    ['Accessor', ctx.h('code', {}, d.accessor || '')],
    ['Policies', d.policies || []],
    ['TTL', d.ttl ? duration(d.ttl) : 'never expires'],
    ['Expires', d.expire_time || ''],
    ['Renewable', d.renewable ? 'yes' : 'no'],
    ['Orphan', d.orphan ? 'yes' : 'no'],
    ['Type', d.type || 'service'],
    ['Path', d.path || ''],
  ]);
}

function createForm(ctx) {
  const out = outlet(ctx, 'token-new');
  const pol = input(ctx, 'token-create-policies', { placeholder: 'default, dev' });
  const ttl = input(ctx, 'token-create-ttl', { placeholder: '1h' });
  const name = input(ctx, 'token-create-name');
  const go = submit(ctx, 'token-create-submit', 'Create token');
  return form(ctx, 'token-create', () => busy(go, async () => {
    out.clear();
    const body = {};
    const policies = splitList(pol.value);
    if (policies.length) body.policies = policies;
    if (ttl.value.trim()) body.ttl = ttl.value.trim();
    if (name.value.trim()) body.display_name = name.value.trim();
    try {
      const a = (await ctx.api('POST', 'auth/token/create', body)).auth || {};
      out.show(ctx.h('div', { class: 'notice once', role: 'status' },
        ctx.h('p', {}, 'The new token is shown only this once:'),
        details(ctx, 'token-new-details', [
          ['Token', ctx.h('span', {}, ctx.h('code', { id: 'token-new-value' }, a.client_token || ''), ' ',
            ctx.copyButton(a.client_token || ''))],
          ['Accessor', ctx.h('code', { id: 'token-new-accessor' }, a.accessor || '')],
          ['Policies', a.policies || []],
          ['Lease duration', duration(a.lease_duration)],
        ])));
    } catch (err) { out.error(err); }
  }), field(ctx, 'Policies (comma-separated)', pol), field(ctx, 'TTL', ttl),
  field(ctx, 'Display name', name), go, out.node);
}

function accessorRow(ctx, acc, out, refresh) {
  const look = button(ctx, null, 'Look up', () => busy(look, async () => {
    out.clear();
    try {
      const d = data(await ctx.api('POST', 'auth/token/lookup-accessor', { accessor: acc }));
      out.show(section(ctx, 'Token with accessor ' + acc, tokenDetails(ctx, 'accessor-details', d)));
    } catch (err) { out.error(err); }
  }), { class: 'accessor-lookup', 'data-accessor': acc, 'aria-label': 'Look up ' + acc });
  const rev = button(ctx, null, 'Revoke', () => busy(rev, async () => {
    out.clear();
    if (!await ctx.confirm('Revoke the token with accessor ' + acc + ' and its children?')) return;
    try {
      await ctx.api('POST', 'auth/token/revoke-accessor', { accessor: acc });
      await refresh();
      out.show(ctx.h('p', { class: 'notice', role: 'status' }, 'Revoked ' + acc + '.'));
    } catch (err) { out.error(err); }
  }), { class: 'accessor-revoke danger', 'data-accessor': acc, 'aria-label': 'Revoke ' + acc });
  return { accessor: ctx.h('code', {}, acc), actions: ctx.h('span', {}, look, ' ', rev) };
}

// The accessor list needs sudo; without it the page says so and goes on.
function accessorsPanel(ctx) {
  const out = outlet(ctx, 'accessor-result');
  const list = ctx.h('div', { id: 'accessor-list' });
  const byAcc = input(ctx, 'accessor-input');
  const refresh = async () => {
    try {
      const keys = await listKeys(ctx, 'auth/token/accessors');
      list.replaceChildren(ctx.table([{ key: 'accessor', label: 'Accessor' }, { key: 'actions', label: '' }],
        keys.map((a) => accessorRow(ctx, a, out, refresh))));
    } catch (err) { list.replaceChildren(); ctx.showError(list, err); }
  };
  const go = submit(ctx, 'accessor-lookup', 'Look up');
  const lookupForm = form(ctx, 'accessor-form', () => busy(go, async () => {
    out.clear();
    try {
      const d = data(await ctx.api('POST', 'auth/token/lookup-accessor', { accessor: byAcc.value.trim() }));
      out.show(section(ctx, 'Token with accessor ' + byAcc.value.trim(), tokenDetails(ctx, 'accessor-details', d)));
    } catch (err) { out.error(err); }
  }), field(ctx, 'Accessor', byAcc), go);
  return { node: section(ctx, 'Accessors', lookupForm, out.node, list), refresh };
}

export default {
  id: ID,
  title: 'Tokens',
  render: async (el, ctx) => {
    begin(el, ID);
    try {
      const self = data(await ctx.api('GET', 'auth/token/lookup-self'));
      el.append(ctx.h('h1', {}, 'Tokens'),
        section(ctx, 'This token', tokenDetails(ctx, 'token-self', self)),
        section(ctx, 'Create a token', createForm(ctx)));
      const acc = accessorsPanel(ctx);
      el.append(acc.node);
      await acc.refresh();
      ready(el);
    } catch (err) { failed(ctx, el, err); }
  },
};
