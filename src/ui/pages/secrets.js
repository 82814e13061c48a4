// secrets.js - the secrets engines (sys/mounts) and KV browsing and editing,
// v1 and v2 (versions, metadata, delete, undelete, destroy).
//
// Routes (each part one encoded segment, so '/' inside a path survives):
//   #/secrets                             the engines
//   #/secrets/<mount>/list/<prefix>       the keys under prefix ('' = top)
//   #/secrets/<mount>/show/<path>[/<v>]   one secret (v2: version v)
//   #/secrets/<mount>/edit/<path>         its editor
//   #/secrets/<mount>/new/<prefix>        a new secret under prefix
// <mount> is the mount path without its trailing slash.

const ID = 'secrets';

function dec(s) {
  try { return decodeURIComponent(s || ''); } catch (e) { return s || ''; }
}

function route(mount, action, path, ...more) {
  return '#/' + [ID, mount, action, path || '', ...more].map(encodeURIComponent).join('/');
}

// A path for the API: each segment encoded, the slashes kept.
function apiPath(...parts) {
  return parts.filter((p) => p !== '').join('/').split('/')
    .map(encodeURIComponent).join('/');
}

function done(el) {
  el.dataset.ready = '1';
  el.removeAttribute('aria-busy');
}

// The mount's KV version: 1, 2, or 0 for an engine that is not kv.
function kvVersion(m) {
  if (!m || (m.type !== 'kv' && m.type !== 'generic')) return 0;
  return m.options && String(m.options.version) === '2' ? 2 : 1;
}

// sys/mounts needs a policy; sys/internal/ui/mounts (Vault's, for its UI)
// lists the mounts any token can see, and is the fallback on a 403.
async function mounts(ctx) {
  let d;
  try {
    const r = await ctx.api('GET', 'sys/mounts');
    d = r && r.data && typeof r.data === 'object' ? r.data : r;
  } catch (err) {
    if (err.status !== 403) throw err;
    const r = await ctx.api('GET', 'sys/internal/ui/mounts');
    d = r && r.data ? r.data.secret : null;
    if (!d) throw err;
  }
  const out = {};
  for (const [k, v] of Object.entries(d || {})) {
    if (k.endsWith('/') && v && typeof v === 'object') out[k.replace(/\/$/, '')] = v;
  }
  return out;
}

function crumbs(ctx, mount, path) {
  const h = ctx.h;
  const items = [h('a', { href: '#/secrets' }, 'Engines'), ' / ',
    h('a', { href: route(mount, 'list', '') }, mount + '/')];
  let acc = '';
  for (const seg of path.split('/').filter((s) => s !== '')) {
    acc += seg + '/';
    items.push(' ', h('a', { href: route(mount, 'list', acc) }, seg + '/'));
  }
  return h('nav', { class: 'crumbs', 'aria-label': 'Breadcrumbs' }, ...items);
}

// ------------------------------------------------------------- engines --

async function renderEngines(el, ctx) {
  const h = ctx.h;
  el.replaceChildren(h('h1', {}, 'Secrets engines'));
  const all = await mounts(ctx);
  const rows = Object.entries(all).sort(([a], [b]) => a.localeCompare(b)).map(([path, m]) => {
    const v = kvVersion(m);
    return {
      path: v ? h('a', { href: route(path, 'list', ''), class: 'mount-link', 'data-mount': path },
        path + '/') : path + '/',
      type: m.type + (v ? ' v' + v : ''),
      accessor: h('span', { class: 'mono' }, m.accessor || ''),
      description: m.description || '',
    };
  });
  el.appendChild(ctx.table([
    { key: 'path', label: 'Path' }, { key: 'type', label: 'Type' },
    { key: 'accessor', label: 'Accessor' }, { key: 'description', label: 'Description' },
  ], rows));
}

// ---------------------------------------------------------------- list --

async function renderList(el, ctx, mount, m, prefix) {
  const h = ctx.h;
  const v = kvVersion(m);
  el.replaceChildren(h('h1', {}, mount + '/' + prefix), crumbs(ctx, mount, prefix));
  el.appendChild(h('div', { class: 'buttons' },
    h('a', { href: route(mount, 'new', prefix), id: 'kv-new', class: 'button-link' }, 'Create secret')));
  let keys = [];
  try {
    const r = await ctx.api('LIST', v === 2 ? apiPath(mount, 'metadata', prefix) : apiPath(mount, prefix));
    keys = (r && r.data && r.data.keys) || [];
  } catch (err) {
    if (err.status !== 404) throw err; // 404: nothing here yet
  }
  const rows = keys.map((k) => ({
    key: k.endsWith('/')
      ? h('a', { href: route(mount, 'list', prefix + k), class: 'kv-folder' }, k)
      : h('a', { href: route(mount, 'show', prefix + k), class: 'kv-key', 'data-key': prefix + k }, k),
    kind: k.endsWith('/') ? 'folder' : 'secret',
  }));
  el.appendChild(h('div', { id: 'kv-list' },
    ctx.table([{ key: 'key', label: 'Key' }, { key: 'kind', label: 'Kind' }], rows)));
}

// ---------------------------------------------------------------- show --

function valueText(v) {
  return typeof v === 'string' ? v : JSON.stringify(v);
}

async function renderShow(el, ctx, mount, m, path, version) {
  const h = ctx.h;
  const v = kvVersion(m);
  const out = h('div', { id: 'kv-result', 'aria-live': 'polite' });
  const parent = path.includes('/') ? path.slice(0, path.lastIndexOf('/') + 1) : '';
  el.replaceChildren(h('h1', {}, mount + '/' + path), crumbs(ctx, mount, parent));
  let data = null, meta = null, vmeta = null;
  try {
    if (v === 2) {
      const r = await ctx.api('GET', apiPath(mount, 'data', path) + (version ? '?version=' + encodeURIComponent(version) : ''));
      data = r && r.data ? r.data.data : null;
      vmeta = r && r.data ? r.data.metadata : null;
    } else {
      const r = await ctx.api('GET', apiPath(mount, path));
      data = r ? r.data : null;
    }
  } catch (err) {
    // A deleted v2 version answers 404 with its metadata; show that.
    if (v === 2 && err.status === 404 && err.body && err.body.data) {
      vmeta = err.body.data.metadata;
    } else {
      throw err;
    }
  }
  if (v === 2) {
    try {
      const r = await ctx.api('GET', apiPath(mount, 'metadata', path));
      meta = r ? r.data : null;
    } catch (err) {
      ctx.showError(out, err); // metadata may be denied while data is not
    }
  }

  let revealed = false;
  const tableBox = h('div', { id: 'kv-data' });
  const drawData = () => {
    if (data === null || data === undefined) {
      tableBox.replaceChildren(h('p', { class: 'hint', id: 'kv-deleted' },
        vmeta && vmeta.destroyed ? 'This version is destroyed.' : 'This version is deleted.'));
      return;
    }
    tableBox.replaceChildren(ctx.table([
      { key: 'k', label: 'Key' }, { key: 'v', label: 'Value' }, { key: 'c', label: '' },
    ], Object.entries(data).map(([k, val]) => ({
      k: h('span', { class: 'mono' }, k),
      v: h('span', { class: 'mono kv-value', 'data-key': k }, revealed ? valueText(val) : '••••••••'),
      c: ctx.copyButton(valueText(val)),
    }))));
  };
  drawData();
  const reveal = h('button', { type: 'button', id: 'kv-reveal', 'aria-pressed': 'false' }, 'Show values');
  reveal.addEventListener('click', () => {
    revealed = !revealed;
    reveal.textContent = revealed ? 'Hide values' : 'Show values';
    reveal.setAttribute('aria-pressed', String(revealed));
    drawData();
  });
  const edit = h('a', { href: route(mount, 'edit', path), id: 'kv-edit', class: 'button-link' }, 'Edit');
  const del = h('button', { type: 'button', id: 'kv-delete', class: 'danger' },
    v === 2 ? 'Delete this version' : 'Delete');
  del.addEventListener('click', async () => {
    out.replaceChildren();
    const which = v === 2 && version ? 'version ' + version + ' of ' : '';
    if (!await ctx.confirm('Delete ' + which + mount + '/' + path + '?', { confirmLabel: 'Delete' })) return;
    try {
      if (v === 2 && version) {
        await ctx.api('POST', apiPath(mount, 'delete', path), { versions: [Number(version)] });
      } else {
        await ctx.api('DELETE', v === 2 ? apiPath(mount, 'data', path) : apiPath(mount, path));
      }
      ctx.navigate(v === 2 ? route(mount, 'show', path) : route(mount, 'list', parent));
    } catch (err) {
      ctx.showError(out, err);
    }
  });
  el.appendChild(h('div', { class: 'buttons' }, reveal, edit, del));
  if (v === 2 && vmeta) {
    el.appendChild(h('p', { class: 'hint', id: 'kv-version' },
      'Version ' + vmeta.version + ', created ' + (vmeta.created_time || '') +
      (vmeta.deletion_time ? ', deleted ' + vmeta.deletion_time : '')));
  }
  el.appendChild(tableBox);
  el.appendChild(out);
  if (v === 2 && meta) el.appendChild(versionsSection(ctx, mount, path, meta, out));
}

// v2: the versions with undelete and destroy, and the metadata.
function versionsSection(ctx, mount, path, meta, out) {
  const h = ctx.h;
  const act = (label, id, fn) => {
    const b = h('button', { type: 'button', id }, label);
    b.addEventListener('click', async () => {
      out.replaceChildren();
      try {
        if (await fn()) ctx.navigate(route(mount, 'show', path));
      } catch (err) {
        ctx.showError(out, err);
      }
    });
    return b;
  };
  const nums = Object.keys(meta.versions || {}).map(Number).sort((a, b) => b - a);
  const rows = nums.map((n) => {
    const vm = meta.versions[String(n)];
    const state = vm.destroyed ? 'destroyed' : vm.deletion_time ? 'deleted' : 'live';
    const actions = [];
    if (state === 'deleted') {
      actions.push(act('Undelete', 'kv-undelete-' + n, async () => {
        await ctx.api('POST', apiPath(mount, 'undelete', path), { versions: [n] });
        return true;
      }));
    }
    if (state !== 'destroyed') {
      actions.push(act('Destroy', 'kv-destroy-' + n, async () => {
        if (!await ctx.confirm('Destroy version ' + n + ' of ' + mount + '/' + path +
          '? Its data cannot be recovered.', { confirmLabel: 'Destroy' })) return false;
        await ctx.api('POST', apiPath(mount, 'destroy', path), { versions: [n] });
        return true;
      }));
    }
    return {
      version: h('a', { href: route(mount, 'show', path, String(n)), class: 'kv-version-link' },
        String(n) + (n === meta.current_version ? ' (current)' : '')),
      created: vm.created_time || '',
      state: h('span', { class: 'badge ' + (state === 'live' ? 'good' : 'bad') }, state),
      actions: h('span', { class: 'buttons' }, ...actions),
    };
  });
  const delAll = act('Delete all versions and metadata', 'kv-delete-metadata', async () => {
    if (!await ctx.confirm('Delete every version and the metadata of ' + mount + '/' + path + '?',
      { confirmLabel: 'Delete all' })) return false;
    await ctx.api('DELETE', apiPath(mount, 'metadata', path));
    const parent = path.includes('/') ? path.slice(0, path.lastIndexOf('/') + 1) : '';
    ctx.navigate(route(mount, 'list', parent));
    return false;
  });
  const facts = [
    ['Current version', meta.current_version], ['Oldest version', meta.oldest_version],
    ['Max versions', meta.max_versions], ['CAS required', meta.cas_required],
    ['Delete version after', meta.delete_version_after], ['Created', meta.created_time],
    ['Updated', meta.updated_time],
  ];
  return h('section', { id: 'kv-versions' },
    h('h2', {}, 'Versions'),
    ctx.table([{ key: 'version', label: 'Version' }, { key: 'created', label: 'Created' },
      { key: 'state', label: 'State' }, { key: 'actions', label: 'Actions' }], rows),
    h('h2', {}, 'Metadata'),
    h('dl', { class: 'facts', id: 'kv-metadata' },
      ...facts.flatMap(([k, v]) => [h('dt', {}, k), h('dd', {}, v === undefined ? '' : String(v))])),
    h('div', { class: 'buttons' }, delAll));
}

// ---------------------------------------------------------------- edit --

async function renderEdit(el, ctx, mount, m, path, isNew) {
  const h = ctx.h;
  const v = kvVersion(m);
  const out = h('div', { id: 'kv-result', 'aria-live': 'polite' });
  let current = {};
  let cas = null;
  if (!isNew) {
    if (v === 2) {
      try {
        const r = await ctx.api('GET', apiPath(mount, 'data', path));
        current = (r && r.data && r.data.data) || {};
        cas = r && r.data && r.data.metadata ? r.data.metadata.version : null;
      } catch (err) {
        if (err.status !== 404) throw err;
      }
    } else {
      const r = await ctx.api('GET', apiPath(mount, path));
      current = (r && r.data) || {};
    }
  }
  const pathInput = h('input', { id: 'kv-path', type: 'text', value: isNew ? path : path,
    autocomplete: 'off', spellcheck: 'false', readonly: !isNew });
  const text = h('textarea', { id: 'kv-json', spellcheck: 'false', 'aria-describedby': 'kv-json-hint' });
  text.value = JSON.stringify(current, null, 2);
  const save = h('button', { type: 'submit', id: 'kv-save' }, 'Save');
  const cancel = h('a', { href: isNew ? route(mount, 'list', path) : route(mount, 'show', path),
    id: 'kv-cancel', class: 'button-link' }, 'Cancel');
  const form = h('form', { id: 'kv-form', class: 'form' },
    h('div', { class: 'field' }, h('label', { for: 'kv-path' }, 'Path'), pathInput),
    h('div', { class: 'field' }, h('label', { for: 'kv-json' }, 'Data (a JSON object)'), text,
      h('span', { class: 'hint', id: 'kv-json-hint' },
        'Ctrl+Enter saves. Values may be strings or any JSON.')),
    h('div', { class: 'buttons' }, save, cancel));
  text.addEventListener('keydown', (ev) => {
    if (ev.key === 'Enter' && (ev.ctrlKey || ev.metaKey)) {
      ev.preventDefault();
      form.requestSubmit();
    }
  });
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    out.replaceChildren();
    const target = pathInput.value.trim().replace(/^\/+/, '');
    let data;
    try {
      if (target === '' || target.endsWith('/')) throw new Error('enter a path that does not end in "/"');
      data = JSON.parse(text.value);
      if (data === null || typeof data !== 'object' || Array.isArray(data)) {
        throw new Error('the data must be a JSON object');
      }
    } catch (err) {
      ctx.showError(out, err);
      text.focus();
      return;
    }
    save.disabled = true;
    try {
      if (v === 2) {
        const body = { data };
        if (!isNew && cas !== null && m.options && m.options.cas_required === 'true') body.options = { cas };
        await ctx.api('POST', apiPath(mount, 'data', target), body);
      } else {
        await ctx.api('POST', apiPath(mount, target), data);
      }
      ctx.navigate(route(mount, 'show', target));
    } catch (err) {
      ctx.showError(out, err);
    } finally {
      save.disabled = false;
    }
  });
  el.replaceChildren(h('h1', {}, (isNew ? 'New secret in ' : 'Edit ') + mount + '/' + (isNew ? path : path)),
    crumbs(ctx, mount, isNew ? path : (path.includes('/') ? path.slice(0, path.lastIndexOf('/') + 1) : '')),
    form, out);
  (isNew ? pathInput : text).focus();
}

// --------------------------------------------------------------- entry --

export default {
  id: ID,
  title: 'Secrets',
  render: async (el, ctx, rest) => {
    el.dataset.page = ID;
    const parts = (rest || []).map((s) => dec(s.split('?')[0]));
    try {
      if (parts.length === 0 || parts[0] === '') {
        await renderEngines(el, ctx);
      } else {
        const mount = parts[0];
        const all = await mounts(ctx);
        const m = all[mount];
        if (!m) throw new Error('no secrets engine is mounted at ' + mount + '/');
        if (!kvVersion(m)) throw new Error(mount + '/ is a ' + m.type + ' engine; only kv is browsable here');
        const action = parts[1] || 'list';
        const path = parts[2] || '';
        if (action === 'list') await renderList(el, ctx, mount, m, path);
        else if (action === 'show') await renderShow(el, ctx, mount, m, path, parts[3] || '');
        else if (action === 'edit') await renderEdit(el, ctx, mount, m, path, false);
        else if (action === 'new') await renderEdit(el, ctx, mount, m, path, true);
        else throw new Error('unknown view "' + action + '"');
      }
    } catch (err) {
      if (!el.querySelector('h1')) el.prepend(ctx.h('h1', {}, 'Secrets'));
      ctx.showError(el, err);
    }
    done(el);
  },
};
