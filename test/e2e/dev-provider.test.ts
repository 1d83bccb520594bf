import t from 'tap';
import * as client from 'openid-client';
import { decodeJwt } from 'jose';
import { startDevProvider } from '../../examples/demo/provider.js';
import { startSampleApi } from '../../examples/demo/api.js';
import { CookieJar, browse } from '../helpers/browserless.js';

const API = 'https://api.example.test';
const REDIRECT_URI = 'http://127.0.0.1:9/cb';

t.test('the development provider signs a user in and issues tokens the sample API accepts', async (t) => {
  const op = await startDevProvider({
    clients: [{ client_id: 'web', client_secret: 'web-secret', redirect_uris: [REDIRECT_URI], token_endpoint_auth_method: 'client_secret_basic' }],
    resources: { [API]: { scopes: ['api.read', 'api.write'] } },
    defaultResource: API,
  });
  t.teardown(() => op.close());
  const api = await startSampleApi({ issuer: op.issuer, audience: API });
  t.teardown(() => api.close());

  const config = await client.discovery(new URL(op.issuer), 'web', undefined, client.ClientSecretBasic('web-secret'), {
    execute: [client.allowInsecureRequests],
  });

  // One browser: signs in, then comes back later asking for more scopes.
  const jar = new CookieJar();
  async function signIn(scope: string) {
    const verifier = client.randomPKCECodeVerifier();
    const state = client.randomState();
    const nonce = client.randomNonce();
    const url = client.buildAuthorizationUrl(config, {
      redirect_uri: REDIRECT_URI,
      scope,
      state,
      nonce,
      code_challenge: await client.calculatePKCECodeChallenge(verifier),
      code_challenge_method: 'S256',
    });
    const res = await browse(url.href, jar, { login: 'carol', stopAt: (u) => u.href.startsWith(REDIRECT_URI) });
    t.ok(res.location?.startsWith(REDIRECT_URI), 'the provider redirects back to the client with a code');
    return client.authorizationCodeGrant(config, new URL(res.location!), {
      pkceCodeVerifier: verifier,
      expectedState: state,
      expectedNonce: nonce,
    });
  }

  const tokens = await signIn('openid profile email offline_access api.read');
  t.match(tokens.claims(), { sub: 'carol', name: 'carol', email: 'carol@example.com', preferred_username: 'carol' }, 'the ID token names the user who signed in');
  t.type(tokens.refresh_token, 'string', 'offline_access yields a refresh token without prompt=consent');
  t.equal(op.counts.codeGrants, 1);

  const refreshed = await client.refreshTokenGrant(config, tokens.refresh_token!, { resource: API, scope: 'api.read' });
  t.equal(op.counts.refreshGrants, 1, 'the provider counts the refresh grant');
  t.match(decodeJwt(refreshed.access_token), { aud: API, scope: 'api.read', sub: 'carol', client_id: 'web' }, 'the access token is a JWT for the resource');
  t.ok(await op.isRevoked(tokens.refresh_token!), 'the rotated-away refresh token is no longer accepted');
  t.notOk(await op.isRevoked(refreshed.refresh_token!), 'the new refresh token is accepted');

  const ok = await fetch(`${api.url}/orders?x=1`, { headers: { authorization: `Bearer ${refreshed.access_token}` } });
  t.equal(ok.status, 200, 'the sample API accepts the access token');
  t.match(await ok.json(), { sub: 'carol', scope: 'api.read', aud: API, client_id: 'web', path: '/orders?x=1', method: 'GET' });
  const denied = await fetch(`${api.url}/orders`, { headers: { authorization: `Bearer ${tokens.id_token}` } });
  t.equal(denied.status, 401, 'the sample API refuses a token that is not an access token for it');
  t.equal(denied.headers.get('www-authenticate'), 'Bearer error="invalid_token"');
  t.equal(api.received.length, 2, 'the sample API records every request');

  const more = await signIn('openid offline_access api.write');
  const both = await client.refreshTokenGrant(config, more.refresh_token!, { resource: API, scope: 'api.read api.write' });
  t.equal(decodeJwt(both.access_token).scope, 'api.read api.write', 'signing in again for more scopes yields a refresh token for the union');

  await op.stop();
  await t.rejects(fetch(`${op.issuer}/.well-known/openid-configuration`), 'a stopped provider refuses connections');
  await op.start();
  const again = await client.refreshTokenGrant(config, both.refresh_token!, { resource: API, scope: 'api.read' });
  t.equal(decodeJwt(again.access_token).aud, API, 'a restarted provider listens on the same port and keeps its state');

  await op.close();
  await t.rejects(fetch(`${op.issuer}/.well-known/openid-configuration`), 'a closed provider refuses connections');
  t.same(op.serverErrors, [], 'the provider had no internal errors');
});
