// audit.js - audit devices (sys/audit) and the server's metrics
// (sys/metrics, go-metrics' JSON shape: Gauges, Counters, Samples) as tables.
import { begin, ready, section, button, outlet, busy, data, failed } from './common.js';

const ID = 'audit';

function labels(l) {
  return Object.keys(l || {}).sort().map((k) => k + '=' + l[k]).join(', ');
}

function num(v) {
  return v == null ? '' : String(Math.round(Number(v) * 1000) / 1000);
}

// One row per metric: gauges show Value, counters Count, samples the summary.
function metricRows(m) {
  const rows = [];
  for (const g of m.Gauges || []) rows.push({ name: g.Name, kind: 'gauge', labels: labels(g.Labels), value: num(g.Value) });
  for (const c of m.Counters || []) rows.push({ name: c.Name, kind: 'counter', labels: labels(c.Labels), value: num(c.Count) });
  for (const s of m.Samples || []) {
    rows.push({ name: s.Name, kind: 'summary', labels: labels(s.Labels),
      value: 'count ' + num(s.Count) + ', mean ' + num(s.Mean) + ', min ' + num(s.Min) + ', max ' + num(s.Max) });
  }
  return rows.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
}

async function devices(ctx) {
  const d = data(await ctx.api('GET', 'sys/audit'));
  const paths = Object.keys(d).sort();
  if (paths.length === 0) return ctx.h('p', { id: 'audit-empty' }, 'No audit device is enabled.');
  return ctx.table([{ key: 'path', label: 'Path' }, { key: 'type', label: 'Type' },
    { key: 'description', label: 'Description' }, { key: 'options', label: 'Options' }],
  paths.map((p) => ({
    path: ctx.h('code', { class: 'audit-path' }, p), type: d[p].type || '',
    description: d[p].description || '', options: labels(d[p].options),
  })));
}

// Metrics fail on their own (e.g. a token without access): shown in place.
async function metrics(ctx, box) {
  const m = await ctx.api('GET', 'sys/metrics');
  box.replaceChildren(ctx.h('p', { class: 'hint' }, 'As of ' + (m.Timestamp || '')),
    ctx.table([{ key: 'name', label: 'Metric' }, { key: 'kind', label: 'Kind' },
      { key: 'labels', label: 'Labels' }, { key: 'value', label: 'Value' }], metricRows(m)));
}

export default {
  id: ID,
  title: 'Audit & metrics',
  render: async (el, ctx) => {
    begin(el, ID);
    try {
      const list = ctx.h('div', { id: 'audit-list' }, await devices(ctx));
      const box = ctx.h('div', { id: 'metrics-table' });
      const out = outlet(ctx, 'metrics-result');
      const refresh = button(ctx, 'metrics-refresh', 'Refresh', () => busy(refresh, async () => {
        out.clear();
        try { await metrics(ctx, box); } catch (err) { out.error(err); }
      }));
      el.append(ctx.h('h1', {}, 'Audit devices and metrics'), section(ctx, 'Audit devices', list),
        section(ctx, 'Metrics', refresh, out.node, box));
      try { await metrics(ctx, box); } catch (err) { out.error(err); }
      ready(el);
    } catch (err) { failed(ctx, el, err); }
  },
};
