// login.js - log in with a token, userpass, approle or jwt. The token the
// server returns is kept in sessionStorage only (app.js's ctx.setToken).
// A token typed in is checked with auth/token/lookup-self first, so a wrong
// one is refused here with the server's words rather than on the next page.

const METHODS = {
  token: { label: 'Token', fields: [['login-token', 'Token', 'password']] },
  userpass: {
    label: 'Username and password',
    fields: [['login-username', 'Username', 'text'], ['login-password', 'Password', 'password']],
  },
  approle: {
    label: 'AppRole',
    fields: [['login-role-id', 'Role ID', 'text'], ['login-secret-id', 'Secret ID', 'password']],
  },
  jwt: {
    label: 'JWT',
    fields: [['login-role', 'Role (empty: the default role)', 'text'], ['login-jwt', 'JWT', 'password']],
  },
};

function val(el, id) {
  const f = el.querySelector('#' + id);
  return f ? f.value : '';
}

// The login request for the chosen method: [path, body].
function request(method, mount, el) {
  const base = 'auth/' + encodeURIComponent(mount).replace(/%2F/g, '/') + '/login';
  if (method === 'userpass') {
    return [base + '/' + encodeURIComponent(val(el, 'login-username')),
      { password: val(el, 'login-password') }];
  }
  if (method === 'approle') {
    const body = { role_id: val(el, 'login-role-id') };
    if (val(el, 'login-secret-id') !== '') body.secret_id = val(el, 'login-secret-id');
    return [base, body];
  }
  const body = { jwt: val(el, 'login-jwt') };
  if (val(el, 'login-role') !== '') body.role = val(el, 'login-role');
  return [base, body];
}

async function logIn(ctx, el, method, mount) {
  if (method === 'token') {
    const t = val(el, 'login-token').trim();
    if (t === '') throw new Error('enter a token');
    const before = ctx.token();
    ctx.setToken(t);
    try {
      await ctx.api('GET', 'auth/token/lookup-self');
    } catch (err) {
      ctx.setToken(before);
      throw err;
    }
    return;
  }
  const [path, body] = request(method, mount.replace(/^\/+|\/+$/g, ''), el);
  const saved = ctx.token();
  ctx.setToken(''); // a login needs no token, and must not send a stale one
  let resp;
  try {
    resp = await ctx.api('POST', path, body);
  } catch (err) {
    ctx.setToken(saved);
    throw err;
  }
  const tok = resp && resp.auth && resp.auth.client_token;
  if (!tok) {
    ctx.setToken(saved);
    throw new Error('the server answered without a token');
  }
  ctx.setToken(tok);
}

export default {
  id: 'login',
  title: 'Log in',
  render: async (el, ctx, rest) => {
    const h = ctx.h;
    el.dataset.page = 'login';
    let method = METHODS[rest && rest[0]] ? rest[0] : 'token';
    const select = h('select', { id: 'login-method', name: 'method' },
      ...Object.entries(METHODS).map(([k, m]) => h('option', { value: k }, m.label)));
    select.value = method;
    const mount = h('input', { id: 'login-mount', type: 'text', value: method,
      autocomplete: 'off', 'aria-describedby': 'login-mount-hint' });
    const mountField = h('div', { class: 'field' },
      h('label', { for: 'login-mount' }, 'Mount path'), mount,
      h('span', { class: 'hint', id: 'login-mount-hint' }, 'where the auth method is enabled'));
    const fields = h('div', {});
    const out = h('div', { id: 'login-result', 'aria-live': 'polite' });
    const submit = h('button', { type: 'submit', id: 'login-submit' }, 'Log in');

    const drawFields = () => {
      fields.replaceChildren(...METHODS[method].fields.map(([id, label, type]) =>
        h('div', { class: 'field' }, h('label', { for: id }, label),
          h('input', { id, name: id, type, autocomplete: type === 'password' ? 'off' : 'username',
            spellcheck: 'false' }))));
      mountField.hidden = method === 'token';
    };
    select.addEventListener('change', () => {
      method = select.value;
      mount.value = method;
      drawFields();
    });

    const form = h('form', { id: 'login-form', class: 'form', novalidate: 'true' },
      h('div', { class: 'field' }, h('label', { for: 'login-method' }, 'Method'), select),
      mountField, fields, h('div', { class: 'buttons' }, submit));
    form.addEventListener('submit', async (ev) => {
      ev.preventDefault();
      out.replaceChildren();
      submit.disabled = true;
      try {
        await logIn(ctx, el, method, mount.value || method);
        ctx.navigate('#/secrets');
      } catch (err) {
        ctx.showError(out, err);
        const first = fields.querySelector('input');
        if (first) first.focus();
      } finally {
        submit.disabled = false;
      }
    });

    drawFields();
    const children = [h('h1', {}, 'Log in to Coffer'), form, out];
    if (ctx.token()) {
      children.splice(1, 0, h('p', { class: 'notice' },
        'You are logged in; logging in again replaces the token of this tab.'));
    }
    el.replaceChildren(...children);
    el.dataset.ready = '1';
    el.removeAttribute('aria-busy');
    const first = fields.querySelector('input');
    if (first) first.focus();
  },
};
