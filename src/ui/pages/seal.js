// seal.js - seal status, the unseal form (one key share at a time, with
// the progress the server reports), reset, and sealing (with a token).
// Works on a sealed server: sys/seal-status and sys/unseal need no token.

function facts(h, st) {
  const rows = [
    ['Sealed', st.sealed ? 'yes' : 'no'],
    ['Seal type', st.type || ''],
    ['Key shares', String(st.n)],
    ['Threshold', String(st.t)],
    ['Progress', st.t ? st.progress + ' of ' + st.t : String(st.progress)],
    ['Initialized', st.initialized ? 'yes' : 'no'],
    ['Version', st.version || ''],
    ['Cluster', st.cluster_name || ''],
  ];
  if (st.migration) rows.push(['Migration', 'in progress']);
  return h('dl', { class: 'facts', id: 'seal-facts' },
    ...rows.flatMap(([k, v]) => [h('dt', {}, k), h('dd', {}, v)]));
}

export default {
  id: 'seal',
  title: 'Seal',
  render: async (el, ctx) => {
    const h = ctx.h;
    const out = h('div', { id: 'seal-result', 'aria-live': 'polite' });
    const body = h('div', {});
    el.dataset.page = 'seal';
    el.replaceChildren(h('h1', {}, 'Seal status'), body, out);

    const draw = (st, focusKey) => {
      const badge = h('span', { id: 'seal-state', class: 'badge ' + (st.sealed ? 'sealed' : 'unsealed') },
        st.sealed ? 'Sealed' : 'Unsealed');
      const parts = [h('p', {}, badge), facts(h, st)];
      if (st.sealed && st.t) {
        parts.push(h('div', { class: 'progress' },
          h('progress', { id: 'unseal-progress', max: String(st.t), value: String(st.progress),
            'aria-label': 'Unseal progress' }),
          h('span', {}, st.progress + ' of ' + st.t + ' key shares entered')));
      }
      if (!st.initialized) {
        parts.push(h('p', { class: 'notice', id: 'seal-uninitialized' },
          'This server is not initialized yet: run "coffer operator init" first.'));
      } else if (st.sealed) {
        const key = h('input', { id: 'unseal-key', type: 'password', autocomplete: 'off',
          spellcheck: 'false' });
        const form = h('form', { id: 'unseal-form', class: 'form' },
          h('div', { class: 'field' }, h('label', { for: 'unseal-key' }, 'Unseal key share'), key),
          h('div', { class: 'buttons' },
            h('button', { type: 'submit', id: 'unseal-submit' }, 'Unseal'),
            h('button', { type: 'button', id: 'unseal-reset' }, 'Reset progress')));
        form.addEventListener('submit', async (ev) => {
          ev.preventDefault();
          out.replaceChildren();
          try {
            const st2 = await ctx.api('PUT', 'sys/unseal', { key: key.value.trim() });
            key.value = '';
            draw(st2, true);
            if (!st2.sealed) {
              out.replaceChildren(h('p', { class: 'notice' }, 'Unsealed. ',
                h('a', { href: ctx.token() ? '#/secrets' : '#/login', id: 'seal-continue' },
                  ctx.token() ? 'Continue' : 'Log in')));
            }
          } catch (err) {
            key.value = '';
            ctx.showError(out, err);
            key.focus();
          }
        });
        form.querySelector('#unseal-reset').addEventListener('click', async () => {
          out.replaceChildren();
          try {
            draw(await ctx.api('PUT', 'sys/unseal', { reset: true }), true);
          } catch (err) {
            ctx.showError(out, err);
          }
        });
        parts.push(form);
      } else if (ctx.token()) {
        const b = h('button', { type: 'button', id: 'seal-now', class: 'danger' }, 'Seal now');
        b.addEventListener('click', async () => {
          out.replaceChildren();
          if (!await ctx.confirm('Seal the server? Every request fails until it is unsealed again.',
            { confirmLabel: 'Seal' })) return;
          try {
            await ctx.api('PUT', 'sys/seal');
            draw(await ctx.api('GET', 'sys/seal-status'));
          } catch (err) {
            ctx.showError(out, err);
          }
        });
        parts.push(h('div', { class: 'buttons' }, b));
      }
      body.replaceChildren(...parts);
      const k = body.querySelector('#unseal-key');
      if (k && focusKey) k.focus();
    };

    try {
      draw(await ctx.api('GET', 'sys/seal-status'), true);
    } catch (err) {
      ctx.showError(out, err);
    }
    el.dataset.ready = '1';
    el.removeAttribute('aria-busy');
  },
};
