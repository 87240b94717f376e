// A real OpenID provider (the certified `oidc-provider` package) for wardgate's tests.
// DEVELOPMENT ONLY: static accounts with known passwords, an in-memory store, plain HTTP on
// 127.0.0.1. Never expose it.
//
// Usage: node provider.mjs --jwks FILE [--port N]
//   FILE holds {"keys": [...]} with private JWKs; the first key of each algorithm signs.
//   --port 0 (the default) listens on a free port. When listening, one JSON line is printed on
//   stdout: {"issuer": "http://127.0.0.1:PORT", "port": PORT}. SIGTERM stops it.
//
// Clients (public, PKCE S256 required, native loopback redirects on any port):
//   wardgate     code + PKCE, refresh tokens, device authorization grant; ID tokens RS256
//   other-app    the same grants; stands for "some other application of the same IdP"
// Access tokens are JWTs (RFC 9068, typ at+jwt, ES256) for the resource urn:wardgate:gateway,
// carrying email and groups.
// Interaction pages (our own, not the package's dev pages, so that passwords are checked):
//   GET  /interaction/:uid          a login form (login, password) or a consent form
//   POST /interaction/:uid/login    checks the password
//   POST /interaction/:uid/confirm  grants what the client asked for
//   GET  /interaction/:uid/abort    refuses
// Test administration: POST /test/accounts/:id/disable (or /enable).
import { readFileSync } from 'node:fs';
import { createServer } from 'node:http';
import { parseArgs } from 'node:util';

import Provider from 'oidc-provider';

const { values: args } = parseArgs({
  options: { jwks: { type: 'string' }, port: { type: 'string', default: '0' } },
});
if (!args.jwks) {
  console.error('usage: node provider.mjs --jwks FILE [--port N]');
  process.exit(2);
}
const jwks = JSON.parse(readFileSync(args.jwks, 'utf8'));

const RESOURCE = 'urn:wardgate:gateway';
const ACCOUNTS = {
  alice: { password: 'alice-password', name: 'Alice Engineer', groups: ['engineering'] },
  bob: { password: 'bob-password', name: 'Bob Clinician', groups: ['clinicians'] },
  carol: { password: 'carol-password', name: 'Carol Compliance', groups: ['compliance', 'audit'] },
  dave: { password: 'dave-password', name: 'Dave Contractor', groups: ['engineering'] },
  frank: { password: 'frank-password', name: 'Frank Engineer', groups: ['engineering'] },
  gina: { password: 'gina-password', name: 'Gina Clinician', groups: ['clinicians'] },
};
// Accounts an administrator disabled (POST /test/accounts/:id/disable): they cannot sign in,
// refresh or call userinfo, as in an IdP that deprovisioned them.
const DISABLED = new Set();

function profile(id) {
  const account = ACCOUNTS[id];
  return {
    sub: id,
    email: `${id}@hospital.example`,
    email_verified: true,
    name: account.name,
    groups: account.groups,
  };
}

const client = (clientId) => ({
  client_id: clientId,
  application_type: 'native',
  token_endpoint_auth_method: 'none',
  redirect_uris: ['http://127.0.0.1/callback'],
  grant_types: [
    'authorization_code',
    'refresh_token',
    'urn:ietf:params:oauth:grant-type:device_code',
  ],
  response_types: ['code'],
  id_token_signed_response_alg: 'RS256',
});

const configuration = {
  clients: [client('wardgate'), client('other-app')],
  jwks,
  cookies: { keys: ['wardgate-test-idp-only'] },
  ttl: {
    AccessToken: 3600,
    IdToken: 3600,
    RefreshToken: 86400,
    DeviceCode: 600,
    Interaction: 600,
    Session: 86400,
    Grant: 86400,
  },
  scopes: ['openid', 'offline_access', 'email', 'profile', 'groups'],
  claims: {
    email: ['email', 'email_verified'],
    profile: ['name'],
    groups: ['groups'],
  },
  // Claims go into the ID token too, as most enterprise IdPs do for groups and email.
  conformIdTokenClaims: false,
  findAccount(_ctx, id) {
    if (!ACCOUNTS[id] || DISABLED.has(id)) return undefined;
    return { accountId: id, claims: () => profile(id) };
  },
  features: {
    devInteractions: { enabled: false },
    deviceFlow: { enabled: true },
    revocation: { enabled: true },
    resourceIndicators: {
      enabled: true,
      defaultResource: () => RESOURCE,
      useGrantedResource: () => true,
      getResourceServerInfo: (_ctx, indicator) => {
        if (indicator !== RESOURCE) throw new Provider.errors.InvalidTarget();
        return {
          scope: 'wardgate',
          audience: RESOURCE,
          accessTokenFormat: 'jwt',
          jwt: { sign: { alg: 'ES256' } },
        };
      },
    },
  },
  extraTokenClaims(_ctx, token) {
    if (token.kind !== 'AccessToken' || !ACCOUNTS[token.accountId]) return undefined;
    const { email, groups } = profile(token.accountId);
    return { email, groups };
  },
  interactions: { url: (_ctx, interaction) => `/interaction/${interaction.uid}` },
};

const escape = (s) => String(s).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

function page(res, status, body) {
  res.statusCode = status;
  res.setHeader('Content-Type', 'text/html; charset=utf-8');
  res.setHeader('Cache-Control', 'no-store');
  res.end(`<!DOCTYPE html><html><head><title>wardgate test IdP</title></head><body>${body}</body></html>`);
}

function loginForm(res, uid, status, message) {
  page(res, status, `<h1>Sign in (development only)</h1><p>${escape(message)}</p>
<form method="post" action="/interaction/${uid}/login">
<input name="login" autofocus><input name="password" type="password">
<button type="submit">Sign in</button></form>`);
}

async function readForm(req) {
  const chunks = [];
  let size = 0;
  for await (const chunk of req) {
    size += chunk.length;
    if (size > 65536) throw new Error('form too large');
    chunks.push(chunk);
  }
  return new URLSearchParams(Buffer.concat(chunks).toString('utf8'));
}

async function confirm(provider, req, res, details) {
  const { prompt, grantId, session, params } = details;
  const grant = grantId
    ? await provider.Grant.find(grantId)
    : new provider.Grant({ accountId: session.accountId, clientId: params.client_id });
  const missing = prompt.details;
  if (missing.missingOIDCScope) grant.addOIDCScope(missing.missingOIDCScope.join(' '));
  if (missing.missingOIDCClaims) grant.addOIDCClaims(missing.missingOIDCClaims);
  for (const [indicator, scopes] of Object.entries(missing.missingResourceScopes ?? {})) {
    grant.addResourceScope(indicator, scopes.join(' '));
  }
  const result = { consent: { grantId: await grant.save() } };
  await provider.interactionFinished(req, res, result, { mergeWithLastSubmission: true });
}

async function interaction(provider, req, res, url) {
  const [, , uid, action = ''] = url.pathname.split('/');
  const details = await provider.interactionDetails(req, res);
  if (details.uid !== uid) return page(res, 400, 'interaction mismatch');
  if (req.method === 'GET' && action === '') {
    if (details.prompt.name === 'login') return loginForm(res, uid, 200, 'Sign in');
    return page(res, 200, `<h1>Authorize ${escape(details.params.client_id)}</h1>
<form method="post" action="/interaction/${uid}/confirm">
<input type="hidden" name="prompt" value="consent"><button type="submit">Allow</button></form>`);
  }
  if (req.method === 'GET' && action === 'abort') {
    const result = { error: 'access_denied', error_description: 'End-User aborted interaction' };
    return provider.interactionFinished(req, res, result, { mergeWithLastSubmission: false });
  }
  if (req.method === 'POST' && action === 'login' && details.prompt.name === 'login') {
    const form = await readForm(req);
    const id = form.get('login') ?? '';
    if (!ACCOUNTS[id] || DISABLED.has(id) || ACCOUNTS[id].password !== form.get('password')) {
      return loginForm(res, uid, 401, 'Invalid login or password');
    }
    const result = { login: { accountId: id } };
    return provider.interactionFinished(req, res, result, { mergeWithLastSubmission: false });
  }
  if (req.method === 'POST' && action === 'confirm' && details.prompt.name === 'consent') {
    await readForm(req);
    return confirm(provider, req, res, details);
  }
  return page(res, 400, 'unexpected interaction step');
}

const server = createServer();
server.listen(Number(args.port), '127.0.0.1', () => {
  const { port } = server.address();
  const issuer = `http://127.0.0.1:${port}`;
  const provider = new Provider(issuer, configuration);
  const callback = provider.callback();
  server.on('request', (req, res) => {
    const url = new URL(req.url, issuer);
    const admin = url.pathname.match(/^\/test\/accounts\/([a-z]+)\/(disable|enable)$/);
    if (admin && req.method === 'POST' && ACCOUNTS[admin[1]]) {
      if (admin[2] === 'disable') DISABLED.add(admin[1]);
      else DISABLED.delete(admin[1]);
      res.statusCode = 204;
      return res.end();
    }
    if (!url.pathname.startsWith('/interaction/')) return callback(req, res);
    return interaction(provider, req, res, url).catch((err) => {
      console.error('interaction failed:', err);
      if (!res.headersSent) page(res, 500, escape(err.message));
    });
  });
  process.stdout.write(`${JSON.stringify({ issuer, port })}\n`);
});

const stop = () => {
  server.close(() => process.exit(0));
  server.closeAllConnections();
};
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
