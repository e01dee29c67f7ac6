// A real OpenID provider (the certified `oidc-provider` package) for the end-to-end tests.
// Listens on 127.0.0.1, port $PORT (0 picks one) and prints `listening <issuer>` once ready.
//
// Accounts: any login is accepted by the development login form; the account id is the
// login. Its email is the login when it contains '@', else `<login>@example.com`; it is
// verified unless the login starts with `unverified`.
//
// Test hooks (not part of OpenID Connect):
//   POST /test/rotate  the provider starts signing with a new key (the old one stays
//                      published), like a real key rotation
//   POST /test/mint    JSON claims -> an ID token signed with the current signing key
//                      (to forge what the login flow cannot produce: an expired token)
import { createServer } from 'node:http';
import { generateKeyPairSync, randomUUID } from 'node:crypto';
import Provider from 'oidc-provider';
import { SignJWT, importJWK } from 'jose';

const port = Number(process.env.PORT || 0);
const callback = process.env.AUTH_CALLBACK || 'http://auth.test/api/v1/auth/oauth/testop/callback';

function rsaKey() {
  const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  return { ...privateKey.export({ format: 'jwk' }), kid: randomUUID(), alg: 'RS256', use: 'sig' };
}

const clients = [
  // The auth server under test (browser redirect flow).
  { client_id: 'auth-server', client_secret: 'auth-server-secret', redirect_uris: [callback] },
  // Apps that sign in on the device and post the ID token (native sign-in).
  { client_id: 'native-app', client_secret: 'native-secret', redirect_uris: ['http://app.test/native'] },
  { client_id: 'other-app', client_secret: 'other-secret', redirect_uris: ['http://app.test/native'] },
].map((c) => ({ grant_types: ['authorization_code'], response_types: ['code'], ...c }));

function build(issuer, keys) {
  const provider = new Provider(issuer, {
    clients,
    jwks: { keys },
    cookies: { keys: ['oidc-test-cookie-key'] },
    claims: { openid: ['sub'], email: ['email', 'email_verified'], profile: ['name'] },
    // Put the scope's claims in the ID token itself, as Google and Apple do.
    conformIdTokenClaims: false,
    features: { devInteractions: { enabled: true } },
    async findAccount(ctx, id) {
      const email = id.includes('@') ? id : `${id}@example.com`;
      return {
        accountId: id,
        async claims() {
          return { sub: id, email, email_verified: !id.startsWith('unverified'), name: `User ${id}` };
        },
      };
    },
  });
  provider.on('server_error', (ctx, err) => console.error('server_error', err));
  return provider;
}

let keys = [rsaKey()];
let provider;
let handler;

const server = createServer(async (req, res) => {
  if (req.method === 'POST' && req.url === '/test/rotate') {
    keys = [rsaKey(), ...keys];
    provider = build(provider.issuer, keys);
    handler = provider.callback();
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ kid: keys[0].kid }));
    return;
  }
  if (req.method === 'POST' && req.url === '/test/mint') {
    let body = '';
    for await (const chunk of req) body += chunk;
    const claims = JSON.parse(body);
    const key = await importJWK(keys[0], 'RS256');
    const token = await new SignJWT(claims)
      .setProtectedHeader({ alg: 'RS256', kid: keys[0].kid })
      .sign(key);
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ id_token: token }));
    return;
  }
  handler(req, res);
});

server.listen(port, '127.0.0.1', () => {
  const issuer = `http://127.0.0.1:${server.address().port}`;
  provider = build(issuer, keys);
  handler = provider.callback();
  console.log(`listening ${issuer}`);
});
