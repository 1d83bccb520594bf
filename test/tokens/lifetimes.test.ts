import t from 'tap';
import { LifetimeModel } from '../../src/tokens/lifetimes.js';
import { signIn } from '../helpers/browserless.js';
import { apiCall, startStack } from '../helpers/stack.js';

const config = (refreshSkewMs: number, absoluteMs: number) => ({
  session: { secrets: [], cookieName: 'bff', idleMs: 60_000, absoluteMs },
  tokenCache: { url: 'memory://', keys: [], refreshSkewMs },
  sourceOf: (path: ReadonlyArray<string | number>) => `routes.yaml:${path.length}:${String(path.at(-1)).length}`,
});

t.test('a session that outlives the provider\'s refresh tokens is a warning naming session.absoluteTimeout, said once', async (t) => {
  const warnings: string[] = [];
  const model = new LifetimeModel(config(60_000, 12 * 3600_000), (m) => warnings.push(m));
  model.observeRefreshTokenLifetime(8 * 3600_000);
  model.observeRefreshTokenLifetime(8 * 3600_000);
  t.equal(warnings.length, 1);
  t.match(warnings[0], /^routes\.yaml:2:15 absoluteTimeout \(43200s\) outlives the provider's refresh tokens \(28800s\)/);
  model.observeRefreshTokenLifetime(24 * 3600_000);
  t.equal(warnings.length, 1, 'a longer refresh token is fine');
});

t.test('a refresh skew longer than the access tokens live is replaced by half their lifetime', async (t) => {
  const warnings: string[] = [];
  const model = new LifetimeModel(config(60_000, 3600_000), (m) => warnings.push(m));
  t.equal(model.skewFor(300_000), 60_000, 'a normal lifetime keeps the configured skew');
  t.equal(model.skewFor(30_000), 15_000);
  t.match(warnings[0], /refreshSkew \(60s\) is not shorter than the provider's access-token lifetime \(30s\)/);
});

t.test('with 30-second access tokens and the default 60-second skew, requests reuse the token instead of refreshing each time', async (t) => {
  const stack = await startStack({ provider: { accessTokenTTL: 30 } });
  t.teardown(() => stack.close());
  const { gatewayCookie } = await signIn(stack.url);
  const before = stack.provider.counts.refreshGrants;
  for (let i = 0; i < 5; i++) t.equal((await apiCall(stack, '/api/x', gatewayCookie)).status, 200);
  t.equal(stack.provider.counts.refreshGrants - before, 1, 'one refresh, not one per request');
  t.match(stack.logs.text, /routes\.yaml:\d+:\d+ refreshSkew \(60s\) is not shorter/, 'the warning names the config line');
});
