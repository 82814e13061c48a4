// policies.js - ACL policies (sys/policies/acl): list, an HCL editor whose
// save shows the server's parse error verbatim and selects the line it
// names, Lua policies read-only, and beside the editor the explain tool
// (sys/policies/explain[-self]): allowed or denied, the decisive rule and
// the rules that lost, with why.
//
// Routes: #/policies                     list + new policy
//         #/policies/<name>              edit one policy
//         #/policies/<name>/line/<n>     ... with line n selected
import {
  begin, ready, segments, route, form, field, input, select, button, submit,
  link, outlet, busy, lock, details, section, splitList, data, listKeys, failed,
} from './common.js';

const ID = 'policies';
const OPERATIONS = ['read', 'create', 'update', 'delete', 'list', 'patch'];
// Who the explain tool asks about: the caller (explain-self) or others.
const SUBJECTS = ['self', 'policies', 'token', 'accessor'];
// Policies the server keeps and that cannot be edited or deleted.
const BUILTIN = new Set(['root']);
const LUA_NOTE = 'This policy is defined in a Lua file on the server (shown here as the rules it ' +
  'grants); edit the file and reload.';

// Selects 1-based line n of a textarea and scrolls it into view.
function selectLine(ta, n) {
  const lines = ta.value.split('\n');
  if (!(n >= 1 && n <= lines.length)) return;
  let start = 0;
  for (let i = 0; i < n - 1; i++) start += lines[i].length + 1;
  ta.focus();
  ta.setSelectionRange(start, start + lines[n - 1].length);
  const lh = ta.scrollHeight / Math.max(lines.length, 1);
  ta.scrollTop = Math.max(0, (n - 3) * lh);
}

// The first "line N" in the server's error texts (HCL parse errors name it).
function errorLine(err) {
  for (const e of (err && err.errors) || [String(err && err.message)]) {
    const m = /\bline (\d+)/i.exec(e);
    if (m) return Number(m[1]);
  }
  return null;
}

// A policy defined in a Lua file: the read reply says so when the server
// marks it; a save refused with "defined in Lua" says so too.
function isLua(d) {
  return d.lua === true || d.type === 'lua' || d.language === 'lua';
}

function policyList(ctx, names, current) {
  return section(ctx, 'Policies', ctx.h('ul', { id: 'policy-list', class: 'plain' },
    ...names.map((n) => ctx.h('li', {}, link(ctx, route(ID, n), n,
      n === current ? { class: 'policy-link current', 'aria-current': 'page' } : { class: 'policy-link' })))),
  link(ctx, route(ID), 'New policy', { id: 'policy-new' }));
}

function editor(ctx, name, d, line) {
  const out = outlet(ctx, 'policy-result');
  const lua = isLua(d);
  const nameIn = input(ctx, 'policy-name', { value: name || '', required: 'required' });
  if (name) nameIn.readOnly = true;
  const text = ctx.h('textarea', { id: 'policy-text', rows: '18', spellcheck: 'false',
    'aria-describedby': 'policy-result' });
  text.value = d.policy || '';
  const lineInfo = ctx.h('span', { id: 'policy-line', class: 'hint' }, '');
  const showPos = () => {
    lineInfo.textContent = 'line ' + (text.value.slice(0, text.selectionStart).split('\n').length);
  };
  for (const ev of ['keyup', 'click', 'focus']) text.addEventListener(ev, showPos);
  const save = submit(ctx, 'policy-save', 'Save');
  const readOnly = (why) => {
    text.readOnly = true;
    lock(save);
    out.node.append(ctx.h('p', { class: 'hint', id: 'policy-readonly' }, why));
  };
  const f = form(ctx, 'policy-form', () => busy(save, async () => {
    out.clear();
    const n = nameIn.value.trim();
    try {
      await ctx.api('PUT', 'sys/policies/acl/' + encodeURIComponent(n), { policy: text.value });
      out.show(ctx.h('p', { class: 'notice', role: 'status' }, 'Policy "' + n + '" saved.'));
      if (!name) ctx.navigate(route(ID, n));
    } catch (err) {
      out.error(err);
      // The read reply does not say a policy is Lua; the refusal does.
      if (((err && err.errors) || []).some((e) => /defined in Lua/.test(e))) readOnly(LUA_NOTE);
      const l = errorLine(err);
      if (l) {
        out.node.append(ctx.h('p', { id: 'policy-error-line' }, 'Error on line ' + l + ' (selected in the editor).'));
        selectLine(text, l);
        showPos();
      }
    }
  }), field(ctx, 'Name', nameIn), field(ctx, lua ? 'Policy (Lua, read-only)' : 'Policy (HCL or JSON)', text),
  ctx.h('div', { class: 'row' }, save, ' ', lineInfo), out.node);
  const del = name && !BUILTIN.has(name) && name !== 'default' && !lua
    ? button(ctx, 'policy-delete', 'Delete', () => busy(del, async () => {
      if (!await ctx.confirm('Delete policy "' + name + '"?')) return;
      try {
        await ctx.api('DELETE', 'sys/policies/acl/' + encodeURIComponent(name));
        ctx.navigate(route(ID));
      } catch (err) { out.error(err); }
    }), { class: 'danger' })
    : null;
  if (lua) readOnly(d.file ? LUA_NOTE + ' File: ' + d.file : LUA_NOTE);
  else if (BUILTIN.has(name)) readOnly('The root policy cannot be changed.');
  if (line) setTimeout(() => selectLine(text, line), 0);
  return section(ctx, name ? 'Policy ' + name : 'New policy', f, del || '');
}

function rulesTable(ctx, id, rules) {
  return ctx.h('div', { id }, ctx.table([
    { key: 'policy', label: 'Policy' }, { key: 'pattern', label: 'Pattern' },
    { key: 'line', label: 'Line' }, { key: 'capabilities', label: 'Capabilities' },
    { key: 'kind', label: 'Kind' }, { key: 'why', label: 'Why' }],
  rules.map((r) => ({
    policy: r.policy || '', pattern: ctx.h('code', {}, r.pattern || ''),
    line: r.line == null ? '' : ruleLink(ctx, r),
    capabilities: (r.capabilities || []).join(', '), kind: r.kind || '',
    why: r.why || (r.decisive ? 'decisive' : ''),
  }))));
}

// "3" linking to the policy with that line selected.
function ruleLink(ctx, r) {
  return link(ctx, route(ID, r.policy, 'line', String(r.line)), String(r.line));
}

function explainView(ctx, d) {
  const verdict = ctx.h('p', { id: 'explain-verdict', class: 'verdict badge ' + (d.allowed ? 'good allowed' : 'bad denied') },
    d.allowed ? 'allowed' : 'denied');
  const parts = [verdict, ctx.h('p', { id: 'explain-reason' }, d.reason || '')];
  const dec = d.decisive;
  parts.push(ctx.h('h3', {}, 'Decisive rule'), dec
    ? details(ctx, 'explain-decisive', [
      ['Policy', dec.policy ? link(ctx, route(ID, dec.policy), dec.policy) : ''],
      ['Pattern', ctx.h('code', {}, dec.pattern || '')],
      ['Line', dec.line == null ? 'unknown' : ruleLink(ctx, dec)],
      ['Capabilities', dec.capabilities || []],
      ['Kind', dec.kind || ''],
    ])
    : ctx.h('p', { id: 'explain-decisive' }, 'No rule matched.'));
  parts.push(details(ctx, 'explain-summary', [
    ['Path', d.path || ''], ['Operation', d.operation || ''],
    ['Policies', d.policies || []], ['Root', d.root ? 'yes' : 'no'],
    ['Sudo required', d.sudo_required ? 'yes' : 'no'],
  ]));
  const others = (d.matches || []).filter((m) => !m.decisive);
  if ((d.matches || []).length) {
    parts.push(ctx.h('h3', {}, 'Matching rules'), rulesTable(ctx, 'explain-matches', d.matches));
  }
  if (others.length === 0 && dec) parts.push(ctx.h('p', { class: 'hint' }, 'No other rule matched.'));
  if ((d.constraints || []).length) {
    parts.push(ctx.h('h3', {}, 'Failed parameter constraints'), ctx.h('div', { id: 'explain-constraints' },
      ctx.table([{ key: 'policy', label: 'Policy' }, { key: 'pattern', label: 'Pattern' },
        { key: 'line', label: 'Line' }, { key: 'parameter', label: 'Parameter' },
        { key: 'rule', label: 'Rule' }, { key: 'reason', label: 'Reason' }],
      d.constraints.map((c) => ({ ...c, line: c.line == null ? '' : String(c.line), pattern: c.pattern || '' })))));
  }
  if ((d.lua || []).length) {
    parts.push(ctx.h('h3', {}, 'Lua checks'), ctx.h('div', { id: 'explain-lua' },
      ctx.table([{ key: 'policy', label: 'Policy' }, { key: 'where', label: 'Where' },
        { key: 'result', label: 'Result' }, { key: 'reason', label: 'Reason' }],
      d.lua.map((l) => ({ policy: l.policy || '', where: (l.file || '') + (l.line == null ? '' : ':' + l.line),
        result: l.result || '', reason: l.reason || '' })))));
  }
  return ctx.h('div', {}, ...parts);
}

function explainPanel(ctx, name) {
  const out = outlet(ctx, 'explain-result');
  const path = input(ctx, 'explain-path', { placeholder: 'secret/data/app/db', required: 'required' });
  const op = select(ctx, 'explain-op', OPERATIONS, 'read');
  const who = select(ctx, 'explain-as', SUBJECTS, name ? 'policies' : 'self');
  const subject = input(ctx, 'explain-subject', { value: name || '',
    placeholder: 'policy names (a, b), a token or an accessor' });
  const body = ctx.h('textarea', { id: 'explain-data', rows: '3', spellcheck: 'false', placeholder: '{"ttl": "1h"}' });
  const addr = input(ctx, 'explain-remote-addr', { placeholder: '10.0.0.7' });
  const syncSubject = () => { subject.disabled = who.value === 'self'; };
  who.addEventListener('change', syncSubject);
  syncSubject();
  const run = submit(ctx, 'explain-run', 'Explain');
  const f = form(ctx, 'explain-form', () => busy(run, async () => {
    out.clear();
    const req = { path: path.value.trim(), operation: op.value };
    try {
      if (body.value.trim()) req.data = JSON.parse(body.value);
    } catch (e) {
      out.error(new Error('request data is not valid JSON: ' + e.message));
      return;
    }
    if (addr.value.trim()) req.remote_addr = addr.value.trim();
    if (who.value === 'policies') req.policies = splitList(subject.value);
    else if (who.value !== 'self') req[who.value] = subject.value.trim();
    try {
      const r = await ctx.api('POST', who.value === 'self' ? 'sys/policies/explain-self' : 'sys/policies/explain', req);
      out.show(explainView(ctx, data(r)));
    } catch (err) { out.error(err); }
  }), field(ctx, 'Path', path), field(ctx, 'Operation', op), field(ctx, 'Ask for', who),
  field(ctx, 'Policies / token / accessor', subject), field(ctx, 'Request data (JSON, optional)', body),
  field(ctx, 'Client address (optional)', addr), run);
  return ctx.h('aside', { class: 'panel explain', 'aria-label': 'Explain a decision' },
    ctx.h('h2', {}, 'Why allowed or denied?'), f, out.node);
}

export default {
  id: ID,
  title: 'Policies',
  render: async (el, ctx, rest) => {
    begin(el, ID);
    const [name, what, n] = segments(rest);
    try {
      const names = await listKeys(ctx, 'sys/policies/acl');
      const d = name ? data(await ctx.api('GET', 'sys/policies/acl/' + encodeURIComponent(name))) : {};
      el.append(ctx.h('h1', {}, 'Policies'), ctx.h('div', { class: 'columns' },
        policyList(ctx, names, name), editor(ctx, name, d, what === 'line' ? Number(n) : null),
        explainPanel(ctx, name)));
      ready(el);
    } catch (err) { failed(ctx, el, err); }
  },
};
