// A real OpenID provider for the tests: the npm package `oidc-provider` (version pinned in
// package.json beside this file, installed by `cargo xtask install` into
// ~/.cache/oidc-authz/node-oidc-provider-<version>/).
//
// Usage:
//   OIDC_AUTHZ_NODE_PROVIDER_DIR=<install dir> "$OIDC_AUTHZ_NODE" provider.mjs '<json config>'
//   (or the config in the env variable OIDC_PROVIDER_CONFIG). oidc-provider 9 wants a Node.js
//   LTS release, 22 or newer (it warns "Unsupported runtime" otherwise): `cargo xtask install`
//   installs one (package.json's nodeRuntime) when the machine's is older and prints
//   OIDC_AUTHZ_NODE.
//
// Config:
//   {
//     "port": 0,                          // 0 = any free port; listens on 127.0.0.1 only
//     "clients": [{ "client_id": "...", "client_secret": "...", "redirect_uris": ["..."],
//                   "token_endpoint_auth_method": "client_secret_basic" | "client_secret_post",
//                   "post_logout_redirect_uris": ["..."], ...any other client metadata }],
//                 // a client with "jwt_access_token_audience": "<aud>" is a service client
//                 // instead: see "JWT access tokens" below
//     "ttl": { "AccessToken": 60, "IdToken": 60, ... },   // optional, seconds
//     "exit_on_stdin_close": false,       // optional: exit when stdin reaches EOF (parent died)
//     "tls": { "cert": "<pem path>", "key": "<pem path>" },  // optional: serve HTTPS with this
//                                         // certificate; the issuer is then https://127.0.0.1:<port>;
//                                         // with "client_ca": "<pem path>" a client certificate
//                                         // signed by that CA is demanded (mutual TLS)
//     "strict_client_auth": true          // optional: a client must use its registered
//                                         // token_endpoint_auth_method (oidc-provider itself
//                                         // accepts basic and post interchangeably)
//   }
//
// Prints exactly one line `READY http://127.0.0.1:<port>` on stdout once it serves requests.
// Everything else (request log, errors) goes to stderr.
//
// Behaviour:
//   - authorization code flow only, PKCE (S256) required for every client;
//   - the ID token carries the scope's claims itself (conformIdTokenClaims: false), not only
//     the userinfo endpoint;
//   - scopes openid email profile groups offline_access; a refresh token is issued to every
//     client allowed the refresh_token grant (the default here), with or without offline_access;
//   - consent is granted automatically (loadExistingGrant), the login page is the built-in
//     development form (devInteractions): any login name, any password;
//   - accounts: sub = preferred_username = name = login; email = <login>@example.com (or the
//     login itself if it contains '@'); email_verified = false iff the login starts with
//     "unverified"; groups = ["users", "<login>-group"] plus "admins" if it starts with "admin".
//
// JWT access tokens (for bearer-token tests and `cargo xtask bench`): every access token above
// is opaque (usable at userinfo, with the refresh rotation). A client registered with
// `"jwt_access_token_audience": "<aud>"` is a service client instead: it may only use the
// client_credentials grant (grant_types ["client_credentials"], no redirect URIs needed), and
// its access tokens are JWTs (header typ at+jwt, RS256, the provider's keys) with iss = the
// issuer, aud = "<aud>", sub = client_id = the service client's id, iat, exp (1 hour, or
// ttl.ClientCredentials), jti. The
// resource indicator (RFC 8707) `urn:oidc-authz:audience:<aud>` is its default resource, so
// a plain `grant_type=client_credentials` request gets one; any other resource is refused
// (invalid_target), as it is for every other client.

import { createServer } from 'node:http';
import { createServer as createTlsServer } from 'node:https';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';

function log(...args) {
  console.error('[oidc-provider]', ...args);
}

async function loadProvider() {
  const dir = process.env.OIDC_AUTHZ_NODE_PROVIDER_DIR;
  if (dir) {
    const require = createRequire(join(dir, 'package.json'));
    const entry = require.resolve('oidc-provider');
    return import(pathToFileURL(entry).href);
  }
  // Fallback: the script sits beside a node_modules that holds oidc-provider.
  return import('oidc-provider');
}

function readConfig() {
  const raw = process.argv[2] ?? process.env.OIDC_PROVIDER_CONFIG;
  if (!raw) {
    throw new Error('no config: pass the JSON config as the first argument or in OIDC_PROVIDER_CONFIG');
  }
  const config = JSON.parse(raw);
  if (!Array.isArray(config.clients)) {
    throw new Error('config.clients must be an array');
  }
  return config;
}

function signingKeys() {
  const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey.export({ format: 'jwk' });
  const ec = generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey.export({ format: 'jwk' });
  return [
    { ...rsa, kid: `rs256-${randomBytes(6).toString('hex')}`, alg: 'RS256', use: 'sig' },
    { ...ec, kid: `es256-${randomBytes(6).toString('hex')}`, alg: 'ES256', use: 'sig' },
  ];
}

function accountClaims(login) {
  const email = login.includes('@') ? login : `${login}@example.com`;
  const groups = ['users', `${login}-group`];
  if (login.startsWith('admin')) {
    groups.push('admins');
  }
  return {
    sub: login,
    email,
    email_verified: !login.startsWith('unverified'),
    name: login,
    preferred_username: login,
    groups,
  };
}

// Client metadata naming the audience of a service client's JWT access tokens.
const JWT_AUDIENCE = 'jwt_access_token_audience';
const RESOURCE_PREFIX = 'urn:oidc-authz:audience:';

function clientMetadata(spec) {
  const { client_id: clientId, redirect_uris: redirectUris } = spec;
  if (spec[JWT_AUDIENCE] !== undefined) {
    if (typeof clientId !== 'string' || typeof spec[JWT_AUDIENCE] !== 'string' || !spec[JWT_AUDIENCE]) {
      throw new Error(`bad service client spec: ${JSON.stringify(spec)}`);
    }
    return {
      token_endpoint_auth_method: 'client_secret_basic',
      ...spec,
      grant_types: ['client_credentials'],
      response_types: [],
      redirect_uris: [],
      post_logout_redirect_uris: [],
    };
  }
  if (typeof clientId !== 'string' || !Array.isArray(redirectUris)) {
    throw new Error(`bad client spec: ${JSON.stringify(spec)}`);
  }
  return {
    grant_types: ['authorization_code', 'refresh_token'],
    response_types: ['code'],
    token_endpoint_auth_method: 'client_secret_basic',
    post_logout_redirect_uris: [],
    ...spec,
  };
}

// oidc-provider accepts client_secret_basic and client_secret_post interchangeably, whichever
// of the two a client registered. The tests want to see the relying party use the method it
// was configured with, so a client may use only its registered one (401 invalid_client).
function enforceRegisteredClientAuth(Provider, provider, errors) {
  const { prototype } = provider.Client;
  const compare = prototype.compareClientSecret;
  prototype.compareClientSecret = function compareClientSecretStrictly(actual) {
    const ctx = Provider.ctx;
    const registered = this.clientAuthMethod;
    if (ctx && (registered === 'client_secret_basic' || registered === 'client_secret_post')) {
      const used = /^basic\s/i.test(ctx.headers?.authorization ?? '') ? 'client_secret_basic' : 'client_secret_post';
      if (used !== registered) {
        throw new errors.InvalidClientAuth(
          `client ${this.clientId} is registered for ${registered} but authenticated with ${used}`,
        );
      }
    }
    return compare.call(this, actual);
  };
}

const ERROR_EVENTS = [
  'authorization.error',
  'backchannel.error',
  'discovery.error',
  'end_session.error',
  'grant.error',
  'interaction.error',
  'introspection.error',
  'jwks.error',
  'pushed_authorization_request.error',
  'revocation.error',
  'userinfo.error',
];

async function main() {
  const config = readConfig();
  const { default: Provider, errors } = await loadProvider();

  if (config.exit_on_stdin_close) {
    process.stdin.on('end', () => process.exit(0));
    process.stdin.on('error', () => process.exit(0));
    process.stdin.resume();
  }

  // The server first: the issuer needs the port.
  const server = config.tls
    ? createTlsServer({
      cert: readFileSync(config.tls.cert),
      key: readFileSync(config.tls.key),
      ...(config.tls.client_ca
        ? { ca: readFileSync(config.tls.client_ca), requestCert: true, rejectUnauthorized: true }
        : {}),
    })
    : createServer();
  await new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(config.port ?? 0, '127.0.0.1', resolve);
  });
  const { port } = server.address();
  const issuer = `${config.tls ? 'https' : 'http'}://127.0.0.1:${port}`;

  const provider = new Provider(issuer, {
    clients: config.clients.map(clientMetadata),
    jwks: { keys: signingKeys() },
    cookies: {
      keys: [randomBytes(32).toString('hex')],
    },
    pkce: {
      required: () => true,
    },
    scopes: ['openid', 'email', 'profile', 'groups', 'offline_access'],
    claims: {
      openid: ['sub'],
      email: ['email', 'email_verified'],
      profile: ['name', 'preferred_username'],
      groups: ['groups'],
    },
    // Put the scope's End-User claims into the ID token itself (the default only does that
    // for response_type=id_token and sends the rest via userinfo).
    conformIdTokenClaims: false,
    features: {
      devInteractions: { enabled: true },
      rpInitiatedLogout: { enabled: true },
      // OpenID Back-Channel Logout 1.0: clients with a backchannel_logout_uri get a signed
      // logout_token POSTed when the user's session at the provider ends.
      backchannelLogout: { enabled: true },
      revocation: { enabled: true },
      userinfo: { enabled: true },
      // Service clients only (see "JWT access tokens" above): no other client is allowed
      // this grant.
      clientCredentials: { enabled: true },
      // On by default in oidc-provider; requests without a resource keep getting opaque
      // tokens. Only a service client has a default resource, and only its own resolves.
      resourceIndicators: {
        enabled: true,
        async defaultResource(_ctx, client, oneOf) {
          if (oneOf) {
            return oneOf;
          }
          const audience = client?.[JWT_AUDIENCE];
          return audience ? `${RESOURCE_PREFIX}${audience}` : undefined;
        },
        async getResourceServerInfo(_ctx, resourceIndicator, client) {
          const audience = client?.[JWT_AUDIENCE];
          if (audience && resourceIndicator === `${RESOURCE_PREFIX}${audience}`) {
            return {
              scope: '',
              audience,
              accessTokenFormat: 'jwt',
              // An hour, as the code flow's access tokens (`ttl.ClientCredentials` wins).
              accessTokenTTL: 3600,
              jwt: { sign: { alg: 'RS256' } },
            };
          }
          throw new errors.InvalidTarget();
        },
      },
    },
    extraClientMetadata: {
      properties: [JWT_AUDIENCE],
    },
    // oidc-provider drops offline_access unless prompt=consent is sent; issue refresh tokens
    // to every client that may use them, like Keycloak does.
    issueRefreshToken: async (_ctx, client) => client.grantTypeAllowed('refresh_token'),
    // Every refresh rotates the refresh token and consumes the old one, like Keycloak with
    // "Revoke Refresh Token" on: a second use of a refresh token fails with invalid_grant.
    rotateRefreshToken: true,
    // Outgoing calls (back-channel logout) go to relying parties on 127.0.0.1 in tests;
    // oidc-provider's SSRF guard refuses loopback, so drop its dispatcher here (test-only).
    fetch: (url, options) => {
      delete options.dispatcher;
      return globalThis.fetch(url, options);
    },
    async findAccount(_ctx, id) {
      const claims = accountClaims(id);
      return {
        accountId: id,
        async claims() {
          return claims;
        },
      };
    },
    // Consent granted automatically: a grant covering everything asked for.
    async loadExistingGrant(ctx) {
      const { client, session, result } = ctx.oidc;
      const grantId = result?.consent?.grantId || session.grantIdFor(client.clientId);
      let grant = grantId ? await ctx.oidc.provider.Grant.find(grantId) : undefined;
      if (!grant) {
        grant = new ctx.oidc.provider.Grant({ clientId: client.clientId, accountId: session.accountId });
      }
      grant.addOIDCScope([...ctx.oidc.requestParamOIDCScopes].join(' '));
      const claims = [...ctx.oidc.requestParamClaims];
      if (claims.length) {
        grant.addOIDCClaims(claims);
      }
      await grant.save();
      return grant;
    },
    ...(config.ttl ? { ttl: config.ttl } : {}),
  });

  // Static clients are validated lazily, on first use: validate them now, to fail at start.
  for (const { client_id: clientId } of config.clients) {
    if (!await provider.Client.find(clientId)) {
      throw new Error(`client ${clientId} was not registered`);
    }
  }

  if (config.strict_client_auth !== false) {
    enforceRegisteredClientAuth(Provider, provider, errors);
  }

  for (const event of ERROR_EVENTS) {
    provider.on(event, (ctx, err) => {
      log(`${event}: ${err.name}: ${err.message}${err.error_description ? ` (${err.error_description})` : ''}`,
        ctx?.method ? `on ${ctx.method} ${ctx.path}` : '');
    });
  }
  // Grant outcomes, one line each: tests count refreshes with these.
  provider.on('grant.success', (ctx) => log(`grant.success ${ctx.oidc.params.grant_type}`));
  provider.on('grant.error', (ctx, err) => log(`grant.error ${ctx.oidc?.params?.grant_type} ${err.error}`));
  provider.on('backchannel.success', (client) => log(`backchannel.success ${client.clientId}`));
  provider.on("backchannel.error", (ctx, err, client) => log(`backchannel.error ${client?.clientId ?? ""} ${err} ${err?.cause ?? ""}`));
  provider.on('server_error', (ctx, err) => {
    log('server_error', ctx?.method, ctx?.path, err);
  });

  // A short request log on stderr: shown by the test harness when a test fails.
  provider.use(async (ctx, next) => {
    await next();
    log(`${ctx.method} ${ctx.path} -> ${ctx.status}${ctx.status >= 300 && ctx.status < 400 ? ` ${ctx.response.get('location')}` : ''}`);
  });

  server.removeAllListeners('error');
  server.on('error', (err) => log('http server error', err));
  server.on('request', provider.callback());

  process.on('SIGTERM', () => server.close(() => process.exit(0)));
  process.on('SIGINT', () => server.close(() => process.exit(0)));

  process.stdout.write(`READY ${issuer}\n`);
}

main().catch((err) => {
  log('failed to start:', err);
  process.exit(1);
});
