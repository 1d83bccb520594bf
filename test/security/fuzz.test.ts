/**
 * Property-based tests (fast-check) of the parsers an attacker or a careless operator
 * feeds: the routes.yaml loader, the returnTo validator, the request-path check and the
 * session cookie decoder. Runs are bounded so the suite stays fast; a failure prints the
 * shrunk counterexample and the seed to replay it.
 */
import t from 'tap';
import fc from 'fast-check';
import { stringify } from 'yaml';
import { formatProblem, parseRoutesFile } from '../../src/config/load.js';
import { safeReturnTo } from '../../src/http/return-to.js';
import { isPlainPath } from '../../src/http/request-path.js';
import { attemptLogin, startHostileStack } from '../helpers/hostile-provider.js';

const RUNS = 300;
const ENV = { SECRET: 'a-secret-of-at-least-32-bytes-0123456789', EMPTY: '' };
const PROBLEM_LINE = /^routes\.yaml:(\d+):(\d+) \S/;

/** The loader's contract: ok, or problems each at a line and column ≥ 1; never a throw. */
function assertLoaderContract(text: string): void {
  const result = parseRoutesFile(text, 'routes.yaml', ENV);
  if (result.ok) return;
  if (result.problems.length === 0) throw new Error('not ok but no problems');
  for (const p of result.problems) {
    const m = PROBLEM_LINE.exec(formatProblem(p));
    if (!m || Number(m[1]) < 1 || Number(m[2]) < 1) throw new Error(`badly located problem: ${formatProblem(p)}`);
  }
}

const VALID = {
  publicUrl: 'https://app.example.com',
  identity: { provider: 'oidc', issuer: 'https://idp.example.com', clientId: 'web', clientSecret: '${SECRET}', scopes: ['openid', 'offline_access'] },
  session: { secret: '${SECRET}' },
  tokenCache: { encryptionKey: '${SECRET}' },
  routes: [
    { prefix: '/api', upstream: 'http://api.internal', auth: 'user', scopes: ['api.read'], methods: ['GET'] },
    { prefix: '/', upstream: 'http://spa.internal', auth: 'none' },
  ],
};

t.test('the valid base config of the loader properties loads (the control)', async (t) => {
  const result = parseRoutesFile(stringify(VALID), 'routes.yaml', ENV);
  t.ok(result.ok, result.ok ? '' : result.problems.map(formatProblem).join('\n'));
});

/** YAML-looking fragments: indentation, flow collections, tags, quotes, variables, documents. */
const YAMLISH_TOKENS = [
  'routes:', 'publicUrl: ', 'identity:', 'session:', 'tokenCache:', 'prefix: /', 'upstream: ', 'auth: ', 'secret: ',
  '\n', '\n  ', '\n  - ', '- ', ': ', ':', ',', '{', '}', '[', ']', '"', "'", '#', '|', '>', '? ', '!!str ', '!!binary ', '!!set ', '!tag ',
  '${SECRET}', '${UNSET}', '${EMPTY:-x}', '${', '}', 'http://x', 'https://', '30s', '-1', '0x1F', '1e400', 'null', '~', 'true', 'NaN',
  '---\n', '...\n', '%YAML 1.2\n', '\t', ' ', '\r\n', '\u00a0', '\ufeff', '日本', '\u0000',
];
const yamlish = fc.array(fc.constantFrom(...YAMLISH_TOKENS), { maxLength: 40 }).map((parts) => parts.join(''));

t.test('the routes.yaml loader never throws on any string, and locates every problem at LINE:COL ≥ 1', async (t) => {
  fc.assert(fc.property(fc.oneof(fc.string({ unit: 'binary', maxLength: 400 }), yamlish), assertLoaderContract), { numRuns: RUNS });
  t.pass(`${RUNS} inputs`);
});

t.test('the routes.yaml loader never throws on any YAML structure, and locates every problem at LINE:COL ≥ 1', async (t) => {
  fc.assert(fc.property(fc.jsonValue({ maxDepth: 4 }), (value) => assertLoaderContract(stringify(value))), { numRuns: RUNS });
  t.pass(`${RUNS} structures`);
});

/** Every path into the valid config (objects and arrays), to replace one value at a time. */
function paths(value: unknown, prefix: Array<string | number> = []): Array<Array<string | number>> {
  if (value === null || typeof value !== 'object') return [prefix];
  const out: Array<Array<string | number>> = [prefix];
  for (const [k, v] of Object.entries(value)) out.push(...paths(v, [...prefix, Array.isArray(value) ? Number(k) : k]));
  return out;
}
const VALID_PATHS = paths(VALID).filter((p) => p.length > 0);

function withValueAt(path: Array<string | number>, replacement: unknown): unknown {
  const copy = structuredClone(VALID) as Record<string, unknown>;
  let node: Record<string | number, unknown> = copy;
  for (const seg of path.slice(0, -1)) node = node[seg] as Record<string | number, unknown>;
  node[path.at(-1)!] = replacement;
  return copy;
}

t.test('the routes.yaml loader never throws when any value of a valid config is replaced by anything', async (t) => {
  const replacement = fc.oneof(fc.jsonValue({ maxDepth: 3 }), fc.string({ maxLength: 40 }), fc.constantFrom('${UNSET}', '${EMPTY}', '', '/', '//x', '/a/../b', '30x', 'ws://x', 'user', 'none', [], {}));
  fc.assert(
    fc.property(fc.constantFrom(...VALID_PATHS), replacement, fc.boolean(), (path, value, extraKey) => {
      const config = withValueAt(path, value) as Record<string, unknown>;
      if (extraKey) config.unexpected = value;
      assertLoaderContract(stringify(config));
    }),
    { numRuns: RUNS },
  );
  t.pass(`${RUNS} mutated configs`);
});

t.test('the routes.yaml loader never throws on YAML aliases: an alias bomb or an unknown alias is a located problem (bug: doc.toJS threw)', async (t) => {
  const bomb = ['a: &a [x,x,x,x,x,x,x,x,x]', ...'bcdefgh'.split('').map((n, i) => `${n}: &${n} [${Array(9).fill('*' + 'abcdefgh'[i]).join(',')}]`)].join('\n');
  for (const text of [bomb, 'routes: *missing', 'publicUrl: *x']) t.doesNotThrow(() => assertLoaderContract(text), JSON.stringify(text.slice(0, 30)));
  const aliasish = fc.array(fc.constantFrom(...YAMLISH_TOKENS, '&a ', '*a', '*b', '<<: *a\n'), { maxLength: 40 }).map((parts) => parts.join(''));
  t.doesNotThrow(() => fc.assert(fc.property(aliasish, assertLoaderContract), { numRuns: RUNS }), 'YAML-ish text with anchors and aliases');
});

/** Fragments of open-redirect payloads. */
const REDIRECT_TOKENS = [
  '/', '//', '\\', '.', '..', '%2F', '%2f', '%5C', '%5c', '%2E', '%09', '%0A', '%0D', '%00', '%25', '%', '@', ':', '?', '#', ';', '&', '=',
  'http:', 'https:', 'javascript:', 'data:', 'evil.example', 'a', '1', ' ', '\t', '\n', '\r', '\u0000', '\u3000', '\uff0f', '\u2028', '\u00e9', '\ud800',
];
const redirectish = fc.oneof(fc.array(fc.constantFrom(...REDIRECT_TOKENS), { maxLength: 16 }).map((p) => p.join('')), fc.string({ unit: 'binary', maxLength: 60 }));
const bases = fc.oneof(fc.webUrl({ withQueryParameters: true, withFragments: true }), fc.constantFrom('http://127.0.0.1:8080', 'https://app.example.com/', 'https://[::1]:8443/a/b?c#d', 'http://a.b/%2F/x/'));

t.test('whatever returnTo value the validator accepts resolves on the same origin against any base, decoded or not', async (t) => {
  fc.assert(
    fc.property(redirectish, bases, (value, base) => {
      const accepted = safeReturnTo(value);
      if (accepted === undefined) return;
      if (/[\u0000-\u001f\u007f]/.test(accepted)) throw new Error('control character in an accepted returnTo');
      if (new URL(accepted, base).origin !== new URL(base).origin) throw new Error(`${JSON.stringify(accepted)} leaves ${base}`);
      let once: string | undefined;
      try {
        once = decodeURIComponent(accepted);
      } catch {
        once = undefined;
      }
      if (once !== undefined && new URL(once, base).origin !== new URL(base).origin) throw new Error(`${JSON.stringify(accepted)} decoded once leaves ${base}`);
    }),
    { numRuns: 2000, examples: [['//evil.example', 'https://app.example.com'], ['/\\evil.example', 'https://app.example.com'], ['/%2F%2Fevil.example', 'https://app.example.com']] },
  );
  t.pass('2000 values');
});

/** Percent-decodes every valid %XX (as a server or router would), leaving invalid ones. */
function percentDecode(s: string): string {
  return s.replace(/%([0-9a-fA-F]{2})/g, (_m, hex: string) => String.fromCharCode(parseInt(hex, 16)));
}

/** What can stand in an HTTP/1.1 request target: visible ASCII, percent-encoding for the rest. */
const PATH_TOKENS = ['/', '.', '..', '%2e', '%2E', '%2f', '%2F', '%5c', '%5C', '%00', '%3b', '%3B', '%25', '%', '2e', ';', '\\', 'api', 'x', '?', '#', '%20', '%09', '~', '@', ':', '%C3%A9', '%c0%ae'];
/** Whole segments and what may follow the last one: where dot-segment tricks live. */
const SEGMENTS = ['.', '..', '...', 'api', 'x', '%2e', '.%2e', '%2e%2e', 'a.b', '', '~', '%25', '%', '%20', '%C3%A9', 'a;b', 'a\\b', '%5c', '%2f'];
const SUFFIXES = ['', '', '', '#', '#x', '#/../x', '?', '?a=/../b', ';', '%23', '%3F'];
const pathish = fc.oneof(
  fc.array(fc.constantFrom(...PATH_TOKENS), { maxLength: 14 }).map((p) => '/' + p.join('')),
  fc.tuple(fc.array(fc.constantFrom(...SEGMENTS), { minLength: 1, maxLength: 5 }), fc.constantFrom(...SUFFIXES)).map(([segs, suffix]) => '/' + segs.join('/') + suffix),
  fc.string({ unit: 'binary-ascii', maxLength: 40 }).map((s) => '/' + s.replace(/[^\x21-\x7e]/g, '')),
);

t.test('whatever path the request-path check accepts has no dot segment once percent-decoded, and URL normalisation keeps every segment', async (t) => {
  fc.assert(
    fc.property(pathish, (url) => {
      if (!isPlainPath(url)) return;
      const path = url.split('?')[0]!;
      const decodedSegments = percentDecode(path).split('/');
      if (decodedSegments.some((s) => s === '.' || s === '..')) throw new Error(`dot segment in ${JSON.stringify(url)}`);
      // What a WHATWG-conforming upstream makes of it: nothing removed, the first segment kept.
      const asUrl = path.split('#')[0]!;
      const normalised = new URL(asUrl, 'http://gw.test').pathname;
      const before = asUrl.split('/');
      const after = normalised.split('/');
      if (after.length !== before.length) throw new Error(`${JSON.stringify(url)} normalises to ${normalised}`);
      if (percentDecode(after[1] ?? '') !== percentDecode(before[1] ?? '')) {
        throw new Error(`${JSON.stringify(url)} changes its first segment to ${normalised}`);
      }
    }),
    { numRuns: 2000, examples: [['/.#'], ['/api/..#x'], ['/api/.;/x']] }, // known regressions first
  );
  t.pass('2000 values');
});

const stack = await startHostileStack();
t.teardown(() => stack.close());
const NAME = stack.cookieName;

t.test('the session cookie decoder never throws, and no Cookie header makes /auth/user answer anything but 200 or 401', async (t) => {
  const app = stack.gateway.app;
  const signedIn = await attemptLogin(stack);
  const real = decodeURIComponent(signedIn.jar.header(stack.url).slice(NAME.length + 1));
  const realId = app.sessionCookie.codec.decode(real)?.get('s');
  t.ok(realId, 'a real session to mutate');

  const mutated = fc.oneof(
    fc.string({ unit: 'binary', maxLength: 300 }),
    fc.string({ unit: fc.constantFrom(...'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=;'), maxLength: 300 }),
    fc.tuple(fc.nat(real.length - 1), fc.string({ unit: 'binary-ascii', minLength: 1, maxLength: 3 })).map(([i, s]) => real.slice(0, i) + s + real.slice(i + 1)),
    fc.nat(real.length - 1).map((i) => real.slice(0, i)),
    fc.nat(real.length - 1).map((i) => real.slice(i + 1)),
  );
  fc.assert(fc.property(mutated, (value) => void app.sessionCookie.codec.decode(value)), { numRuns: 1000 });

  const printable = (s: string) => s.replace(/[^\x20-\x7e]/g, '');
  await fc.assert(
    fc.asyncProperty(mutated, fc.constantFrom('raw', 'encoded', 'doubled', 'other-name'), async (value, shape) => {
      const cookie =
        shape === 'raw' ? `${NAME}=${printable(value)}` : shape === 'encoded' ? `${NAME}=${encodeURIComponent(value)}` : shape === 'doubled' ? `${NAME}=${encodeURIComponent(value)}; ${NAME}=${encodeURIComponent(value)}` : `x; ${printable(value)}`;
      const res = await app.inject({ method: 'GET', url: '/auth/user', headers: { cookie } });
      if (res.statusCode === 401) return;
      // A mutation the decoder cannot tell from the real cookie (base64 padding bits) is the real session.
      const session = app.sessionCookie.codec.decode(value);
      if (res.statusCode === 200 && session?.get('s') === realId) return;
      throw new Error(`${res.statusCode} for ${JSON.stringify(cookie.slice(0, 80))}`);
    }),
    { numRuns: 300 },
  );
  t.notOk(stack.logs.records().some((r) => r.msg === 'request failed'), 'no internal error was logged');
});
