import t from 'tap';
import { signIn } from '../helpers/browserless.js';
import { apiCall, startStack, type Stack } from '../helpers/stack.js';
import { accountKeyOf } from '../../src/identity/oidc.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function signedIn(t: Tap.Test, session: string) {
  const stack = await startStack({ session });
  t.teardown(() => stack.close());
  const { gatewayCookie: cookie } = await signIn(stack.url, { login: 'alice' });
  return { stack, cookie, accountKey: accountKeyOf(stack.provider.issuer, 'alice') };
}

async function assertExpired(t: Tap.Test, stack: Stack, cookie: string) {
  const user = await apiCall(stack, '/auth/user', cookie);
  t.equal(user.status, 401, '/auth/user answers 401');
  t.equal(user.json?.error, 'session_expired');
  t.equal(user.json?.loginUrl, '/auth/login', 'with a loginUrl');
  const api = await apiCall(stack, '/api/x', cookie);
  t.equal(api.status, 401, 'a proxied route answers 401');
  t.match(api.headers.get('content-type'), /^application\/problem\+json/);
  t.equal(api.json?.error, 'session_expired');
  t.type(api.json?.loginUrl, 'string', 'with a loginUrl');
}

t.test("the idle timeout ends a session after inactivity (activity keeps it alive), and the idle-expired session's tokens are removed when its cookie comes back", async (t) => {
  const { stack, cookie, accountKey } = await signedIn(t, '  idleTimeout: 2s\n  absoluteTimeout: 1m');
  // A request every 700 ms for well past the idle timeout: the session slides.
  const until = Date.now() + 3500;
  while (Date.now() < until) {
    t.equal((await apiCall(stack, '/api/x', cookie)).status, 200, 'active: still signed in');
    await sleep(700);
  }
  const user = await apiCall(stack, '/auth/user', cookie);
  t.equal(user.status, 200, 'still signed in after more than the idle timeout of activity');
  const expiresAt = Date.parse(String(user.json?.expiresAt));
  t.ok(expiresAt <= Date.now() + 2000 && expiresAt > Date.now() + 1000, 'expiresAt is the idle deadline, about 2 s ahead');
  t.ok(await stack.gateway.deps.tokens.refreshTokenOf(accountKey), 'tokens are cached while the session lives');

  await sleep(Math.max(0, expiresAt - Date.now()) + 300);
  await assertExpired(t, stack, cookie);
  t.equal(await stack.gateway.deps.tokens.refreshTokenOf(accountKey), undefined, "the expired session's tokens are removed");
});

t.test('the absolute timeout ends a session even with activity, and its tokens are removed', async (t) => {
  const { stack, cookie, accountKey } = await signedIn(t, '  idleTimeout: 2s\n  absoluteTimeout: 4s');
  const signedInAt = Date.now();
  let lastOk = 0;
  let firstRefused = 0;
  while (Date.now() - signedInAt < 7000) {
    const res = await apiCall(stack, '/api/x', cookie);
    if (res.status === 200) {
      t.equal(firstRefused, 0, 'never signed in again once refused');
      lastOk = Date.now() - signedInAt;
    } else {
      t.equal(res.status, 401, res.text);
      firstRefused ||= Date.now() - signedInAt;
    }
    await sleep(400);
  }
  t.ok(lastOk > 2500, `activity outlived the idle timeout (last 200 at ${lastOk} ms)`);
  t.ok(firstRefused > 0 && firstRefused < 5000, `refused soon after the absolute timeout (first 401 at ${firstRefused} ms)`);
  await assertExpired(t, stack, cookie);
  t.equal(await stack.gateway.deps.tokens.refreshTokenOf(accountKey), undefined, "the expired session's tokens are removed");
});
