// database.js - the database secrets engine: mounts, connection configs
// (secrets stay on the server: the API never returns the password, and the
// connection_url is shown exactly as returned, i.e. redacted), roles, and
// "Get credentials" with the lease it creates.
//
// Routes: #/database                      database mounts
//         #/database/<mount>              configs and roles of a mount
//         #/database/<mount>/config/<n>   one connection config
//         #/database/<mount>/role/<n>     one role: edit, get credentials
import {
  begin, ready, segments, route, form, field, input, button, submit, link,
  outlet, busy, details, section, duration, data, listKeys, failed,
} from './common.js';

const ID = 'database';

async function databaseMounts(ctx) {
  const mounts = data(await ctx.api('GET', 'sys/mounts'));
  return Object.keys(mounts).filter((p) => mounts[p] && mounts[p].type === 'database')
    .sort().map((p) => ({ path: p.replace(/\/$/, ''), m: mounts[p] }));
}

async function renderMounts(el, ctx) {
  const list = await databaseMounts(ctx);
  el.append(ctx.h('h1', {}, 'Database engines'));
  if (list.length === 0) {
    el.append(ctx.h('p', { id: 'db-empty' }, 'No database secrets engine is enabled.'));
    return;
  }
  el.append(ctx.table(
    [{ key: 'path', label: 'Path' }, { key: 'description', label: 'Description' }],
    list.map(({ path, m }) => ({
      path: link(ctx, route(ID, path), path + '/', { class: 'db-mount' }),
      description: m.description || '',
    }))));
}

async function renderMount(el, ctx, mount) {
  const [configs, roles] = await Promise.all([
    listKeys(ctx, mount + '/config'), listKeys(ctx, mount + '/roles')]);
  el.append(ctx.h('nav', { class: 'crumbs' }, link(ctx, route(ID), 'Database engines'), ' / ', mount),
    ctx.h('h1', {}, mount + '/'));
  el.append(section(ctx, 'Connections', configs.length === 0
    ? ctx.h('p', {}, 'No connections.')
    : ctx.table([{ key: 'name', label: 'Name' }],
      configs.map((n) => ({ name: link(ctx, route(ID, mount, 'config', n), n, { class: 'db-config' }) })))));
  el.append(section(ctx, 'Roles', roles.length === 0
    ? ctx.h('p', {}, 'No roles.')
    : ctx.table([{ key: 'name', label: 'Name' }],
      roles.map((n) => ({ name: link(ctx, route(ID, mount, 'role', n), n, { class: 'db-role' }) })))));
  el.append(section(ctx, 'New role', roleForm(ctx, mount, null, {})));
}

async function renderConfig(el, ctx, mount, name) {
  const d = data(await ctx.api('GET', mount + '/config/' + name));
  const cd = d.connection_details || {};
  el.append(ctx.h('nav', { class: 'crumbs' }, link(ctx, route(ID), 'Database engines'), ' / ',
    link(ctx, route(ID, mount), mount), ' / config / ', name),
  ctx.h('h1', {}, name));
  // Only what the API returns is shown; it never returns the password.
  el.append(details(ctx, 'db-config-details', [
    ['Plugin', d.plugin_name || ''],
    ['Connection URL', cd.connection_url || ''],
    ['Username', cd.username || ''],
    ['Allowed roles', d.allowed_roles || []],
    ['Password policy', d.password_policy || ''],
    ['Reconcile', d.reconcile == null ? '' : String(d.reconcile)],
  ]));
}

// Role fields the form edits; the rest of the role is kept as read.
function roleForm(ctx, mount, name, role) {
  const out = outlet(ctx, 'role-result');
  const nameIn = input(ctx, 'role-name', { value: name || '', required: 'required' });
  if (name) nameIn.readOnly = true;
  const db = input(ctx, 'role-db-name', { value: role.db_name || '' });
  const ttl = input(ctx, 'role-default-ttl', { value: role.default_ttl ? String(role.default_ttl) : '' });
  const maxTtl = input(ctx, 'role-max-ttl', { value: role.max_ttl ? String(role.max_ttl) : '' });
  const stmts = ctx.h('textarea', { id: 'role-creation', rows: '4', spellcheck: 'false' });
  stmts.value = (role.creation_statements || []).join('\n');
  const save = submit(ctx, 'role-save', 'Save role');
  return form(ctx, 'role-form', () => busy(save, async () => {
    out.clear();
    const body = { db_name: db.value.trim() };
    if (ttl.value.trim()) body.default_ttl = ttl.value.trim();
    if (maxTtl.value.trim()) body.max_ttl = maxTtl.value.trim();
    if (stmts.value.trim()) body.creation_statements = [stmts.value];
    const n = nameIn.value.trim();
    try {
      await ctx.api('POST', mount + '/roles/' + n, body);
      out.show(ctx.h('p', { class: 'notice', role: 'status' }, 'Role "' + n + '" saved.'));
      if (!name) ctx.navigate(route(ID, mount, 'role', n));
    } catch (err) { out.error(err); }
  }), field(ctx, 'Name', nameIn), field(ctx, 'Database (connection name)', db),
  field(ctx, 'Default TTL', ttl), field(ctx, 'Max TTL', maxTtl),
  field(ctx, 'Creation statements', stmts), save, out.node);
}

function credentialsView(ctx, reply) {
  const d = data(reply);
  return details(ctx, 'creds-result', [
    ['Username', ctx.h('code', { id: 'creds-username' }, d.username || '')],
    ['Password', ctx.h('span', {}, ctx.h('code', { id: 'creds-password' }, d.password || ''), ' ',
      ctx.copyButton(d.password || ''))],
    ['Lease ID', reply.lease_id
      ? link(ctx, route('leases', 'id', ...reply.lease_id.split('/')), reply.lease_id, { id: 'creds-lease-id' })
      : ''],
    ['Lease duration', ctx.h('span', { id: 'creds-lease-duration' },
      duration(reply.lease_duration) + ' (' + reply.lease_duration + 's)')],
    ['Renewable', reply.renewable ? 'yes' : 'no'],
  ]);
}

async function renderRole(el, ctx, mount, name) {
  const role = data(await ctx.api('GET', mount + '/roles/' + name));
  el.append(ctx.h('nav', { class: 'crumbs' }, link(ctx, route(ID), 'Database engines'), ' / ',
    link(ctx, route(ID, mount), mount), ' / role / ', name),
  ctx.h('h1', {}, name));
  el.append(details(ctx, 'role-details', [
    ['Database', role.db_name || ''],
    ['Default TTL', duration(role.default_ttl)],
    ['Max TTL', duration(role.max_ttl)],
    ['Credential type', role.credential_type || ''],
  ]));
  const out = outlet(ctx, 'creds-outlet');
  const get = button(ctx, 'creds-get', 'Get credentials', () => busy(get, async () => {
    out.clear();
    try {
      out.show(credentialsView(ctx, await ctx.api('GET', mount + '/creds/' + name)));
    } catch (err) { out.error(err); }
  }));
  el.append(section(ctx, 'Credentials', get, out.node));
  el.append(section(ctx, 'Edit role', roleForm(ctx, mount, name, role)));
}

export default {
  id: ID,
  title: 'Database',
  render: async (el, ctx, rest) => {
    begin(el, ID);
    const [mount, kind, name] = segments(rest);
    try {
      if (!mount) await renderMounts(el, ctx);
      else if (kind === 'config' && name) await renderConfig(el, ctx, mount, name);
      else if (kind === 'role' && name) await renderRole(el, ctx, mount, name);
      else await renderMount(el, ctx, mount);
      ready(el);
    } catch (err) { failed(ctx, el, err); }
  },
};
