// leases.js - the lease tree: sys/leases/lookup/<prefix> LIST walked by
// prefix (as Vault's UI does), a count of leases under each prefix, one
// lease's lookup with renew and revoke, revoke-prefix behind a confirmation,
// irrevocable leases (sys/leases, sudo) and pending ones (an issuance still
// under way: the lookup's Coffer-only "state") highlighted.
//
// Routes: #/leases                    the top of the tree
//         #/leases/tree/<prefix...>   a prefix
//         #/leases/id/<lease id...>   one lease
import {
  begin, ready, segments, route, form, field, input, button, submit, link,
  outlet, busy, details, section, duration, data, listKeys, failed,
} from './common.js';

const ID = 'leases';
// LIST calls one page may spend on counting; past it a count shows "≥n".
const COUNT_BUDGET = 200;
// Lookups one page may spend on the state of the leases it lists.
const STATE_BUDGET = 100;

// The lease ids the server gave up revoking ({lease_id: error}); {} when the
// token may not read sys/leases (sudo) - the tree still works without it.
async function irrevocable(ctx) {
  try {
    const list = data(await ctx.api('GET', 'sys/leases')).leases || [];
    const out = new Map();
    for (const l of list) out.set(l.lease_id, l.error || '');
    return out;
  } catch (err) {
    return new Map();
  }
}

// Leases under prefix (recursively); {n, exact:false} once the budget is spent.
async function countUnder(ctx, prefix, budget) {
  if (budget.left <= 0) return { n: 0, exact: false };
  budget.left--;
  const keys = await listKeys(ctx, 'sys/leases/lookup/' + prefix);
  let n = 0, exact = true;
  const subs = await Promise.all(keys.filter((k) => k.endsWith('/'))
    .map((k) => countUnder(ctx, prefix + k, budget)));
  for (const s of subs) { n += s.n; exact = exact && s.exact; }
  n += keys.filter((k) => !k.endsWith('/')).length;
  return { n, exact };
}

function crumbs(ctx, parts, last) {
  const nav = ctx.h('nav', { class: 'crumbs', 'aria-label': 'Lease prefix' },
    link(ctx, route(ID), 'leases'));
  parts.forEach((p, i) => {
    nav.append(' / ');
    nav.append(i === parts.length - 1 && last ? p : link(ctx, route(ID, 'tree', ...parts.slice(0, i + 1)), p));
  });
  return nav;
}

// A listed lease's lookup (for its state), or null past the budget or on
// an error: the row then just shows no state.
async function lookupState(ctx, id, budget) {
  if (budget.left <= 0) return null;
  budget.left--;
  try {
    return data(await ctx.api('PUT', 'sys/leases/lookup', { lease_id: id }));
  } catch (err) {
    return null;
  }
}

// The badge of one lease: irrevocable (sys/leases or its lookup), pending.
function stateBadge(ctx, irrError, d) {
  if (irrError === undefined && d && d.irrevocable) irrError = d.last_error || '';
  if (irrError !== undefined) {
    return ctx.h('span', { class: 'badge bad irrevocable' }, 'irrevocable: ' + irrError);
  }
  if (d && d.state === 'pending') {
    return ctx.h('span', { class: 'badge warn pending' }, 'pending: issuance under way');
  }
  return '';
}

function hasIrrevocable(irr, prefix) {
  for (const id of irr.keys()) if (id.startsWith(prefix)) return true;
  return false;
}

async function renderTree(el, ctx, parts) {
  const prefix = parts.length ? parts.join('/') + '/' : '';
  const [keys, irr] = await Promise.all([
    listKeys(ctx, 'sys/leases/lookup/' + prefix), irrevocable(ctx)]);
  el.append(crumbs(ctx, parts, true), ctx.h('h1', {}, 'Leases' + (prefix ? ': ' + prefix : '')));
  const budget = { left: COUNT_BUDGET };
  const looks = { left: STATE_BUDGET };
  const rows = await Promise.all(keys.map(async (k) => {
    const folder = k.endsWith('/');
    const name = folder ? k.slice(0, -1) : k;
    const full = prefix + k;
    const c = folder ? await countUnder(ctx, full, budget) : { n: 1, exact: true };
    const d = folder ? null : await lookupState(ctx, full, looks);
    const bad = folder ? hasIrrevocable(irr, full) : irr.has(full) || !!(d && d.irrevocable);
    const pending = !bad && !!(d && d.state === 'pending');
    const href = folder ? route(ID, 'tree', ...parts, name) : route(ID, 'id', ...parts, name);
    const cls = 'lease-' + (folder ? 'prefix' : 'id') + (bad ? ' irrevocable' : '') +
      (pending ? ' pending' : '');
    return {
      key: link(ctx, href, k, { class: cls, 'data-key': full }),
      count: (c.exact ? '' : '≥') + c.n,
      state: folder ? (bad ? ctx.h('span', { class: 'badge bad irrevocable' }, 'has irrevocable leases') : '')
        : stateBadge(ctx, irr.has(full) ? irr.get(full) : undefined, d),
    };
  }));
  el.append(rows.length === 0
    ? ctx.h('p', { id: 'leases-empty' }, 'No leases under this prefix.')
    : ctx.table([{ key: 'key', label: 'Prefix or lease' }, { key: 'count', label: 'Leases' },
      { key: 'state', label: 'State' }], rows));
  if (prefix) el.append(revokePrefixForm(ctx, el, parts, prefix));
  if (!prefix && irr.size > 0) el.append(irrevocableList(ctx, irr));
}

function revokePrefixForm(ctx, el, parts, prefix) {
  const out = outlet(ctx, 'revoke-prefix-result');
  const btn = button(ctx, 'lease-revoke-prefix', 'Revoke every lease under ' + prefix, () => busy(btn, async () => {
    out.clear();
    if (!await ctx.confirm('Revoke every lease under "' + prefix + '"? This cannot be undone.')) return;
    try {
      // Vault's route takes the prefix without its final '/' (a write to a
      // path ending in '/' is refused) and adds it back itself.
      await ctx.api('PUT', 'sys/leases/revoke-prefix/' + prefix.replace(/\/$/, ''), {});
      await rerender(el, ctx, () => renderTree(el, ctx, parts));
    } catch (err) { out.error(err); }
  }), { class: 'danger' });
  return section(ctx, 'Revoke prefix', btn, out.node);
}

function irrevocableList(ctx, irr) {
  return section(ctx, 'Irrevocable leases', ctx.table(
    [{ key: 'id', label: 'Lease' }, { key: 'error', label: 'Last error' }],
    [...irr.entries()].map(([id, error]) => ({
      id: link(ctx, route(ID, 'id', ...id.split('/')), id, { class: 'irrevocable' }), error,
    }))));
}

function leaseDetails(ctx, d, irrError) {
  const pairs = [
    ['Lease ID', ctx.h('code', { id: 'lease-id' }, d.id || '')],
    ['Issued', d.issue_time || ''],
    ['Expires', ctx.h('span', { id: 'lease-expire' }, d.expire_time || '')],
    ['TTL', ctx.h('span', { id: 'lease-ttl' }, duration(d.ttl) + ' (' + d.ttl + 's)')],
    ['Renewable', ctx.h('span', { id: 'lease-renewable' }, d.renewable ? 'yes' : 'no')],
    ['Last renewal', d.last_renewal || 'never'],
  ];
  if (irrError === undefined && d.irrevocable) irrError = d.last_error || '';
  if (irrError !== undefined) {
    pairs.push(['State', ctx.h('span', { class: 'badge bad irrevocable', id: 'lease-irrevocable' },
      'irrevocable: ' + irrError)]);
  } else if (d.state === 'pending') {
    pairs.push(['State', ctx.h('span', { class: 'badge warn pending', id: 'lease-pending' },
      'pending: issuance under way')]);
  } else if (d.state) {
    pairs.push(['State', ctx.h('span', { id: 'lease-state' }, d.state)]);
  }
  return details(ctx, 'lease-details', pairs);
}

async function renderLease(el, ctx, parts) {
  const id = parts.join('/');
  const [d, irr] = await Promise.all([
    ctx.api('PUT', 'sys/leases/lookup', { lease_id: id }).then(data), irrevocable(ctx)]);
  el.append(crumbs(ctx, parts, true), ctx.h('h1', {}, 'Lease'));
  const view = ctx.h('div', {}, leaseDetails(ctx, d, irr.has(id) ? irr.get(id) : undefined));
  el.append(view);
  const out = outlet(ctx, 'lease-result');
  const inc = input(ctx, 'lease-increment', { placeholder: 'e.g. 1h (empty: the lease\'s own TTL)' });
  const renew = submit(ctx, 'lease-renew', 'Renew');
  const renewForm = form(ctx, 'lease-renew-form', () => busy(renew, async () => {
    out.clear();
    const body = { lease_id: id };
    if (inc.value.trim()) body.increment = inc.value.trim();
    try {
      const r = await ctx.api('PUT', 'sys/leases/renew', body);
      const fresh = data(await ctx.api('PUT', 'sys/leases/lookup', { lease_id: id }));
      view.replaceChildren(leaseDetails(ctx, fresh));
      const msg = ['Renewed: ' + duration(r.lease_duration) + '.', ...(r.warnings || [])];
      out.show(ctx.h('p', { class: 'notice', role: 'status' }, msg.join(' ')));
    } catch (err) { out.error(err); }
  }), field(ctx, 'Increment', inc), renew);
  const revoke = button(ctx, 'lease-revoke', 'Revoke', () => busy(revoke, async () => {
    out.clear();
    try {
      await ctx.api('PUT', 'sys/leases/revoke', { lease_id: id });
      ctx.navigate(parts.length > 1 ? route(ID, 'tree', ...parts.slice(0, -1)) : route(ID));
    } catch (err) { out.error(err); }
  }), { class: 'danger' });
  el.append(section(ctx, 'Actions', renewForm, revoke, out.node));
}

async function rerender(el, ctx, fn) {
  begin(el, ID);
  try { await fn(); ready(el); } catch (err) { failed(ctx, el, err); }
}

export default {
  id: ID,
  title: 'Leases',
  render: async (el, ctx, rest) => {
    const [kind, ...parts] = segments(rest);
    await rerender(el, ctx, () => (kind === 'id' && parts.length
      ? renderLease(el, ctx, parts) : renderTree(el, ctx, kind === 'tree' ? parts : [])));
  },
};
