/**
 * Session cookies under attack: tampered, truncated, foreign-key, huge and many-chunk
 * cookies are "no session" (401, never a 500), and a cookie planted before sign-in never
 * becomes the victim's session. (Key rotation keeping sessions: test/e2e/token-lifecycle.test.ts.)
 */
import t from 'tap';
import { attemptLogin, isSignedIn, setCookieOf, spaCall, startHostileStack, type HostileStack } from '../helpers/hostile-provider.js';

const stack = await startHostileStack();
t.teardown(() => stack.close());
const NAME = stack.cookieName;

async function signInAs(subject: string, target: HostileStack = stack) {
  target.provider.behaviour.subject = subject;
  const attempt = await attemptLogin(target);
  if (attempt.callback?.status !== 302) throw new Error('sign-in failed');
  return attempt;
}

/** The decrypted session of a Cookie header value, as the gateway reads it (null when unreadable). */
function sessionOf(cookieHeader: string): { s?: unknown; b?: unknown } | null {
  const pair = cookieHeader.split('; ').find((p) => p.startsWith(`${NAME}=`));
  if (!pair) return null;
  const session = stack.gateway.app.sessionCookie.codec.decode(decodeURIComponent(pair.slice(NAME.length + 1)));
  return session ? { s: session.get('s'), b: session.get('b') } : null;
}

function flip(value: string, at: number): string {
  const c = value[at];
  return value.slice(0, at) + (c === 'A' ? 'B' : 'A') + value.slice(at + 1);
}

t.test('tampered, truncated, foreign-key, huge and many-chunk session cookies answer 401 (never a 500), 200 of them in a row, and the gateway still serves', async (t) => {
  const alice = await signInAs('alice');
  const cookie = alice.jar.header(stack.url);
  const value = cookie.slice(NAME.length + 1);
  const decoded = decodeURIComponent(value);
  const [cipher, nonce] = decoded.split(';') as [string, string];
  t.ok(cipher && nonce, 'the cookie is ciphertext;nonce');

  const other = await startHostileStack({ sessionSecret: 'another-session-secret-0123456789abcdef-zz' });
  t.teardown(() => other.close());
  other.provider.behaviour.subject = 'alice';
  const foreign = (await attemptLogin(other)).jar.header(other.url);
  t.ok(await isSignedIn(other, foreign), 'the other gateway signed alice in');

  const enc = encodeURIComponent;
  const variants: Array<[string, string]> = [
    ['a bit flipped in the ciphertext', `${NAME}=${enc(flip(cipher, 5) + ';' + nonce)}`],
    ['a bit flipped at the end of the ciphertext', `${NAME}=${enc(flip(cipher, cipher.length - 3) + ';' + nonce)}`],
    ['a bit flipped in the nonce', `${NAME}=${enc(cipher + ';' + flip(nonce, 2))}`],
    ['truncated to half', `${NAME}=${value.slice(0, Math.floor(value.length / 2))}`],
    ['truncated by one character', `${NAME}=${enc(decoded.slice(0, -1))}`],
    ['without the nonce', `${NAME}=${enc(cipher)}`],
    ['with an empty nonce', `${NAME}=${enc(cipher + ';')}`],
    ['without the ciphertext', `${NAME}=${enc(';' + nonce)}`],
    ['first character dropped', `${NAME}=${enc(decoded.slice(1))}`],
    ['the same ciphertext with another nonce', `${NAME}=${enc(cipher + ';' + Buffer.alloc(24, 7).toString('base64'))}`],
    ['from a gateway with another session secret', foreign],
    ['8 KB of ciphertext', `${NAME}=${enc('A'.repeat(8 * 1024) + ';' + nonce)}`],
    ['8 KB of random base64', `${NAME}=${enc(Buffer.alloc(6 * 1024, 3).toString('base64') + ';' + nonce)}`],
    ['8 KB of semicolons', `${NAME}=${';'.repeat(8 * 1024)}`],
    ['100 copies of the name, the real one last', Array.from({ length: 100 }, (_, i) => `${NAME}=junk${i}`).join('; ') + `; ${NAME}=${enc(flip(cipher, 9) + ';' + nonce)}`],
    ['200 chunk-like cookies', Array.from({ length: 200 }, (_, i) => `${NAME}.${i}=${'c'.repeat(30)}`).join('; ')],
    ['the cookie split into chunks', `${NAME}.0=${value.slice(0, 40)}; ${NAME}.1=${value.slice(40)}`],
    ['empty', `${NAME}=`],
    ['only a semicolon', `${NAME}=%3B`],
    ['a NUL', `${NAME}=%00`],
    ['broken percent-encoding', `${NAME}=%ZZ%E0%A4%A`],
    ['quoted and tampered', `${NAME}="${enc(flip(cipher, 7) + ';' + nonce)}"`],
    ['JSON', `${NAME}=${enc('{"s":"x","b":"y"}')}`],
    ['not base64', `${NAME}=${enc('!!!!;????')}`],
    ['the nonce twice', `${NAME}=${enc(nonce + ';' + nonce)}`],
  ];
  let requests = 0;
  for (let round = 0; requests < 200; round++) {
    for (const [what, header] of variants) {
      const path = requests % 2 ? '/api/orders' : '/auth/user';
      const res = await spaCall(stack, path, header);
      requests += 1;
      if (round === 0 || res.status !== 401) {
        t.equal(res.status, 401, `${what} (${path}): 401`);
        t.equal(res.json?.error, 'session_expired', `${what}: session_expired`);
      }
    }
  }
  t.ok(requests >= 200, `${requests} hostile cookies answered`);
  t.notOk(stack.logs.records().some((r) => r.msg === 'request failed'), 'no request failed with an internal error');
  t.equal(stack.apiUpstream.received.length, 0, 'nothing reached the upstream');
  const still = await spaCall(stack, '/api/orders', cookie);
  t.equal(still.status, 200, 'the real cookie still works');
});

t.test('a correctly encrypted cookie naming a session id the gateway never issued is no session', async (t) => {
  const app = stack.gateway.app;
  const forged = app.sessionCookie.codec.encode({ s: 'A'.repeat(43) });
  const res = await spaCall(stack, '/auth/user', `${NAME}=${encodeURIComponent(forged)}`);
  t.equal(res.status, 401, 'a valid cookie is not enough: the session record must exist');
});

t.test("a cookie planted before sign-in (the attacker's own session) is replaced at the callback: the victim gets a new session id and the attacker's cookie never becomes the victim's session", async (t) => {
  const mallory = await signInAs('mallory');
  const planted = mallory.jar.header(stack.url);
  t.equal((await spaCall(stack, '/auth/user', planted)).json?.sub, 'mallory', "the attacker's cookie is a working session of the attacker");
  const plantedSession = sessionOf(planted);
  t.ok(plantedSession?.s, 'it names a session id');

  // The victim's browser holds the attacker's cookie (planted through a sibling subdomain,
  // an injected Set-Cookie, ...) and signs in.
  const { CookieJar } = await import('../helpers/browserless.js');
  const victimJar = new CookieJar();
  victimJar.setCookies(stack.url, `${planted}; Path=/`);
  stack.provider.behaviour.subject = 'alice';
  const victim = await attemptLogin(stack, { jar: victimJar });
  t.equal(victim.callback?.status, 302, 'the victim signs in');
  const issued = setCookieOf(victim.callback!, NAME);
  t.ok(issued, 'the callback sets a new cookie');
  const victimCookie = victim.jar.header(stack.url);
  const victimSession = sessionOf(victimCookie);
  t.ok(victimSession?.s, 'the new cookie names a session id');
  t.not(victimSession?.s, plantedSession?.s, 'a different session id from the planted one');
  t.equal((await spaCall(stack, '/auth/user', victimCookie)).json?.sub, 'alice', "the victim's session is alice's");

  const attackerView = await spaCall(stack, '/auth/user', planted);
  t.equal(attackerView.status, 401, "the attacker's copy of the planted cookie is no session at all now");
  t.notMatch(attackerView.text, /alice/, 'and shows nothing of the victim');
  const before = stack.apiUpstream.received.length;
  t.equal((await spaCall(stack, '/api/orders', planted)).status, 401, "the attacker's cookie gets no token for the victim");
  t.equal(stack.apiUpstream.received.length, before, 'nothing reached the upstream');
});

t.test("a pre-login cookie planted from the attacker's own unfinished sign-in never carries the victim's session", async (t) => {
  const { CookieJar, followRedirects } = await import('../helpers/browserless.js');
  const attackerJar = new CookieJar();
  await followRedirects(`${stack.url}/auth/login?returnTo=/`, attackerJar, { stopAt: () => true });
  const planted = attackerJar.header(stack.url);
  t.ok(sessionOf(planted)?.b, 'the pre-login cookie carries a login binding');
  t.notOk(sessionOf(planted)?.s, 'and no session');

  const victimJar = new CookieJar();
  victimJar.setCookies(stack.url, `${planted}; Path=/`);
  stack.provider.behaviour.subject = 'alice';
  const victim = await attemptLogin(stack, { jar: victimJar });
  t.equal(victim.callback?.status, 302, 'the victim signs in');
  t.ok(await isSignedIn(stack, victim.jar.header(stack.url)), 'the victim is signed in');
  t.notOk(await isSignedIn(stack, planted), "the attacker's copy of the pre-login cookie is still no session");
});
