import t from 'tap';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { AuthError, InteractionRequiredAuthError, ServerError } from '@azure/msal-node';
import { FetchNetworkClient, NETWORK_ERROR, NON_JSON_RESPONSE } from '../../src/identity/entra-network.js';
import { issuerMatches, redemptionScopes, wrapMsalError } from '../../src/identity/entra.js';
import { IdentityError } from '../../src/identity/types.js';

async function server(handler: (req: IncomingMessage, res: ServerResponse, body: string) => void) {
  const srv = createServer((req, res) => {
    let body = '';
    req.on('data', (c: Buffer) => (body += c.toString()));
    req.on('end', () => handler(req, res, body));
  });
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  return {
    url: `http://127.0.0.1:${(srv.address() as AddressInfo).port}`,
    close: () =>
      new Promise<void>((r) => {
        srv.close(() => r());
        srv.closeAllConnections();
      }),
  };
}

t.test('a provider that does not answer fails within the configured timeout as a network error', async (t) => {
  const hang = await server(() => undefined);
  t.teardown(() => hang.close());
  const client = new FetchNetworkClient({ timeoutMs: 300 });
  const started = Date.now();
  const err = await client.sendPostRequestAsync(hang.url + '/token', { body: 'grant_type=refresh_token' }).catch((e: unknown) => e);
  t.ok(err instanceof AuthError);
  t.equal((err as AuthError).errorCode, NETWORK_ERROR);
  t.ok(Date.now() - started < 2000, 'it gave up after the timeout');
  t.equal(wrapMsalError(err, 'refresh').kind, 'unavailable');
});

t.test('an unreachable provider is a network error', async (t) => {
  const gone = await server(() => undefined);
  await gone.close();
  const err = await new FetchNetworkClient({ timeoutMs: 1000 }).sendGetRequestAsync(gone.url + '/x').catch((e: unknown) => e);
  t.equal((err as AuthError).errorCode, NETWORK_ERROR);
});

t.test('an HTML error page is transient from a 5xx and a refusal from a 4xx, and JSON answers pass through with their status', async (t) => {
  const srv = await server((req, res, body) => {
    if (req.url === '/html502') {
      res.writeHead(502, { 'content-type': 'text/html' }).end('<h1>Bad gateway</h1>');
    } else if (req.url === '/html404') {
      res.writeHead(404, { 'content-type': 'text/html' }).end('<h1>no</h1>');
    } else {
      res.writeHead(400, { 'content-type': 'application/json', 'x-ms-request-id': 'r1' }).end(JSON.stringify({ error: 'invalid_grant', echo: body }));
    }
  });
  t.teardown(() => srv.close());
  const client = new FetchNetworkClient({ timeoutMs: 2000 });
  t.equal(((await client.sendGetRequestAsync(srv.url + '/html502').catch((e: unknown) => e)) as AuthError).errorCode, NETWORK_ERROR);
  t.equal(((await client.sendGetRequestAsync(srv.url + '/html404').catch((e: unknown) => e)) as AuthError).errorCode, NON_JSON_RESPONSE);
  const res = await client.sendPostRequestAsync<{ error: string; echo: string }>(srv.url + '/token', { body: 'grant_type=refresh_token&scope=a' });
  t.equal(res.status, 400);
  t.equal(res.body.error, 'invalid_grant');
  t.equal(res.headers['x-ms-request-id'], 'r1');
  t.equal(res.body.echo, 'grant_type=refresh_token&scope=a', 'the body is sent unchanged');
});

t.test('extra token parameters are added to the token requests of their grant type only', async (t) => {
  const srv = await server((_req, res, body) => res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ body })));
  t.teardown(() => srv.close());
  const client = new FetchNetworkClient({ timeoutMs: 2000, extraTokenParams: { grantType: 'client_credentials', params: { resource: 'https://api.example' } } });
  const cc = await client.sendPostRequestAsync<{ body: string }>(srv.url, { body: 'grant_type=client_credentials&scope=x' });
  t.equal(new URLSearchParams(cc.body.body).get('resource'), 'https://api.example');
  const rt = await client.sendPostRequestAsync<{ body: string }>(srv.url, { body: 'grant_type=refresh_token&scope=x' });
  t.equal(new URLSearchParams(rt.body.body).get('resource'), null);
});

t.test('MSAL errors map to the gateway identity error kinds', async (t) => {
  const kind = (err: unknown) => wrapMsalError(err, 'refresh').kind;
  t.equal(kind(new InteractionRequiredAuthError('no_tokens_found', '')), 'interaction_required');
  t.equal(kind(new ServerError('invalid_grant', '', 'expired', undefined, undefined, 400)), 'invalid_grant');
  t.equal(kind(new ServerError('invalid_scope', '', '', undefined, undefined, 400)), 'interaction_required', 'a scope not granted yet needs consent');
  t.equal(kind(new ServerError('invalid_target', '', '', undefined, undefined, 400)), 'interaction_required');
  t.equal(kind(new ServerError('server_error', '', '', undefined, undefined, 500)), 'unavailable');
  t.equal(kind(new ServerError('temporarily_unavailable', '', '', undefined, undefined, 503)), 'unavailable');
  t.equal(kind(new ServerError('invalid_client', '', '', undefined, undefined, 401)), 'invalid_response');
  t.equal(kind(new AuthError(NETWORK_ERROR, '', 'timeout')), 'unavailable');
  t.equal(kind(new AuthError('nonce_mismatch', '')), 'invalid_response');
  t.equal(kind(Object.assign(new Error('t'), { name: 'TimeoutError' })), 'unavailable');
  t.equal(kind(new Error('something else')), 'invalid_response');
  const kept = new IdentityError('invalid_request', 'x');
  t.equal(wrapMsalError(kept, 'y'), kept, 'an IdentityError passes unchanged');
  const wrapped = wrapMsalError(new ServerError('invalid_grant', ''), 'refresh');
  t.equal(wrapped.providerError, 'invalid_grant');
  t.ok(wrapped.cause instanceof ServerError, 'the original is kept as the cause');
});

t.test("Microsoft's multi-tenant issuer template matches the token's tenant", async (t) => {
  const template = 'https://login.microsoftonline.com/{tenantid}/v2.0';
  t.ok(issuerMatches(template, 'https://login.microsoftonline.com/t1/v2.0', 't1'));
  t.notOk(issuerMatches(template, 'https://login.microsoftonline.com/t2/v2.0', 't1'));
  t.ok(issuerMatches(template, 'https://login.microsoftonline.com/t2/v2.0'), 'without a tid any one tenant matches');
  t.notOk(issuerMatches(template, 'https://evil.example/t2/v2.0'));
  t.notOk(issuerMatches(template, 'https://login.microsoftonline.com/a/b/v2.0'));
  t.ok(issuerMatches('https://idp.example/', 'https://idp.example'));
  t.notOk(issuerMatches('https://idp.example', 'https://idp.example.evil'));
  t.notOk(issuerMatches('https://idp.example', undefined));
});

t.test('the code is redeemed for the scopes of one resource: Entra ID issues a token for one resource only', async (t) => {
  t.same(redemptionScopes(['offline_access', 'openid', 'profile', 'User.Read', 'api://orders/Orders.Read']), ['offline_access', 'openid', 'profile', 'User.Read']);
  t.same(redemptionScopes(['api://orders/Orders.Read', 'openid', 'api://orders/Orders.Write', 'Mail.Read']), ['api://orders/Orders.Read', 'openid', 'api://orders/Orders.Write']);
  t.same(redemptionScopes(['openid', 'https://graph.microsoft.com/User.Read', 'Mail.Read']), ['openid', 'https://graph.microsoft.com/User.Read', 'Mail.Read'], 'Graph named by URI or by bare scope');
  t.same(redemptionScopes(['openid', 'profile']), ['openid', 'profile']);
  t.same(redemptionScopes(['openid', 'api.read', 'email']), ['openid', 'api.read', 'email']);
});
