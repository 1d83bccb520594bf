import t, { type Test } from 'tap';
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parseRoutesFile, formatProblem, type ParseResult } from '../../src/config/load.js';
import { startDevProvider } from '../../examples/demo/provider.js';
import { freePort } from '../helpers/stack.js';

const CLI = resolve('dist/src/cli.js');
const SECRET = 'session-secret-for-tests-0123456789abcdef';
const KEY = 'cache-key-for-tests-0123456789abcdef-xyz';
const ENV = { SESSION_SECRET: SECRET, CACHE_KEY: KEY, CLIENT_SECRET: 'client-secret' };

const VALID = `listen: { host: 127.0.0.1, port: 8080 }
publicUrl: https://app.example.com
identity:
  provider: oidc
  issuer: https://idp.example.com
  clientId: web-app
  clientSecret: \${CLIENT_SECRET}
  scopes: [openid, profile, offline_access]
session:
  secret: \${SESSION_SECRET}
  idleTimeout: 15m
tokenCache:
  url: \${CACHE_URL:-memory://}
  encryptionKey: \${CACHE_KEY}
routes:
  - name: orders
    prefix: /api/orders/
    upstream: http://orders.internal:8080/
    rewritePrefix: /v1/orders
    auth: user
    scopes: [orders.write, orders.read, orders.read]
  - prefix: /
    upstream: http://spa.internal:80
    auth: none
`;

/** Every problem line of a parse that must fail. */
function lines(result: ParseResult): string[] {
  if (result.ok) return ['(parsed without problems)'];
  return result.problems.map(formatProblem);
}

t.test('a valid routes.yaml gives a config with variables substituted, defaults applied and routes compiled', async (t) => {
  const result = parseRoutesFile(VALID, 'routes.yaml', ENV);
  if (!result.ok) {
    t.fail(result.problems.map(formatProblem).join('\n'));
    return;
  }
  const { config } = result;
  t.same(result.warnings, [], 'no warnings');
  t.equal(config.publicUrl, 'https://app.example.com');
  t.equal(config.secure, true);
  t.same(config.listen, { host: '127.0.0.1', port: 8080 });
  t.equal(config.identity.clientSecret, 'client-secret', '${CLIENT_SECRET} comes from the environment');
  t.equal(config.identity.authMethod, 'client_secret_basic', 'the OpenID Connect registration default');
  t.same(config.session.secrets, [SECRET]);
  t.equal(config.session.cookieName, '__Host-bff', '__Host- cookie by default with an https publicUrl');
  t.equal(config.session.idleMs, 15 * 60_000);
  t.equal(config.session.absoluteMs, 12 * 3_600_000, 'absoluteTimeout defaults to 12h');
  t.equal(config.tokenCache.url, 'memory://', '${CACHE_URL:-memory://} falls back to its default');
  t.same(config.tokenCache.keys, [KEY]);
  t.equal(config.routes.length, 2);
  const [orders, spa] = config.routes;
  t.equal(orders!.name, 'orders');
  t.equal(orders!.prefix, '/api/orders', 'trailing slash dropped from the prefix');
  t.equal(orders!.upstream, 'http://orders.internal:8080', 'trailing slash dropped from the upstream');
  t.equal(orders!.rewritePrefix, '/v1/orders');
  t.same(orders!.scopes, ['orders.read', 'orders.write'], 'scopes sorted and de-duplicated');
  t.equal(orders!.csrfHeader, 'x-csrf', 'the CSRF header is on by default');
  t.equal(spa!.name, '/', 'the name defaults to the prefix');
  t.equal(spa!.auth, 'none');
});

t.test('${VAR:-default} takes the variable when it is set and the default when it is not', async (t) => {
  const set = parseRoutesFile(VALID, 'routes.yaml', { ...ENV, CACHE_URL: 'redis://cache:6379/0' });
  t.ok(set.ok);
  if (set.ok) t.equal(set.config.tokenCache.url, 'redis://cache:6379/0');
  const empty = parseRoutesFile(VALID, 'routes.yaml', { ...ENV, CACHE_URL: '' });
  t.ok(empty.ok, 'an empty variable counts as unset, as in the shell');
  if (empty.ok) t.equal(empty.config.tokenCache.url, 'memory://');
});

t.test('a broken routes.yaml yields every schema problem at once, each at its line and column', async (t) => {
  const text = `publicUrl: http://127.0.0.1:8080
colour: blue
identity:
  provider: okta
  issuer: http://127.0.0.1:9999
  allowInsecureRequests: true
  clientSecret: \${MISSING_SECRET}
session:
  secret: \${SESSION_SECRET}
  idleTimeout: 30 minutes
tokenCache:
  url: \${CACHE_URL:-memory://}
  encryptionKey: \${CACHE_KEY}
routes:
  - prefix: /api
    upstream: http://127.0.0.1:1
    auth: sometimes
    scopes: [api.read]
    websocket: maybe
`;
  t.same(lines(parseRoutesFile(text, 'routes.yaml', ENV)), [
    'routes.yaml:2:1 unknown key "colour"',
    'routes.yaml:4:3 missing required key "clientId"',
    'routes.yaml:4:13 identity.provider: invalid value (Identity back end: oidc (openid-client) or entra (@azure/msal-node).)',
    'routes.yaml:7:17 environment variable MISSING_SECRET is not set (write ${MISSING_SECRET:-default} for a default)',
    'routes.yaml:10:16 session.idleTimeout: invalid value (Session ends after this long without a request (sliding).)',
    'routes.yaml:17:11 routes.0.auth: invalid value (Which token to inject: user | client | user-or-client | none.)',
    'routes.yaml:19:16 routes.0.websocket: expected boolean',
  ]);
});

t.test('a broken routes.yaml yields every cross-field problem at once, each at its line and column', async (t) => {
  const text = `publicUrl: http://127.0.0.1:8080
identity:
  provider: oidc
  issuer: http://127.0.0.1:9999
  allowInsecureRequests: true
  clientId: web
  clientSecret: \${CLIENT_SECRET}
session:
  secret: too-short
  cookieName: __Host-bff
tokenCache:
  encryptionKey: \${CACHE_KEY}
routes:
  - prefix: /api
    upstream: http://127.0.0.1:1
    auth: user
  - prefix: /api/
    upstream: http://127.0.0.1:2
    auth: none
`;
  t.same(lines(parseRoutesFile(text, 'routes.yaml', ENV)), [
    'routes.yaml:9:11 session secret must be at least 32 bytes',
    'routes.yaml:10:15 a __Host- cookie needs an https publicUrl (browsers refuse it otherwise)',
    'routes.yaml:14:5 route with auth: user needs scopes',
    'routes.yaml:17:13 duplicate prefix /api: it shadows route 1 (line of the first wins)',
  ]);
});

t.test('schema and cross-field problems of one file are reported in one run (bug: cross-field problems only appeared once the schema errors were fixed)', async (t) => {
  const text = `publicUrl: http://127.0.0.1:8080
unknownKey: 1
identity:
  provider: oidc
  issuer: http://127.0.0.1:9999
  allowInsecureRequests: true
  clientId: web
  clientSecret: \${CLIENT_SECRET}
  timeout: soon
session:
  secret: too-short
  cookieName: __Host-bff
  absoluteTimeout: forever
tokenCache:
  url: \${CACHE_URL:-memory://}
  encryptionKey: \${CACHE_KEY}
routes:
  - prefix: /api
    upstream: http://127.0.0.1:1
    auth: user
    timeout: 10
  - prefix: /api
    upstream: http://127.0.0.1:2
    auth: none
    methods: get
`;
  t.same(lines(parseRoutesFile(text, 'routes.yaml', ENV)), [
    'routes.yaml:2:1 unknown key "unknownKey"',
    'routes.yaml:9:12 identity.timeout: invalid value (Timeout of every call to the provider.)',
    'routes.yaml:11:11 session secret must be at least 32 bytes',
    'routes.yaml:12:15 a __Host- cookie needs an https publicUrl (browsers refuse it otherwise)',
    'routes.yaml:13:20 session.absoluteTimeout: invalid value (Session ends this long after sign-in, whatever happens.)',
    'routes.yaml:18:5 route with auth: user needs scopes',
    'routes.yaml:21:14 routes.0.timeout: invalid value (Upstream response timeout.)',
    'routes.yaml:22:13 duplicate prefix /api: it shadows route 1 (line of the first wins)',
    "routes.yaml:25:14 routes.1.methods.0: invalid value (Expected string to match '^[A-Z]+$')",
  ]);
});

t.test('an unset session secret does not hide the problems of the routes', async (t) => {
  const text = VALID.replace('  - prefix: /\n', '  - prefix: /api/orders\n');
  const env = { CACHE_KEY: KEY, CLIENT_SECRET: 'client-secret' };
  t.same(lines(parseRoutesFile(text, 'routes.yaml', env)), [
    'routes.yaml:10:11 environment variable SESSION_SECRET is not set (write ${SESSION_SECRET:-default} for a default)',
    'routes.yaml:22:13 duplicate prefix /api/orders: it shadows route 1 (line of the first wins)',
  ]);
});

t.test('an unset variable is reported once, not again as the empty value it leaves (bug: a second "expected string length" line at the same place)', async (t) => {
  const text = VALID.replace('${CLIENT_SECRET}', '${NOT_SET_ANYWHERE}');
  t.same(lines(parseRoutesFile(text, 'routes.yaml', ENV)), ['routes.yaml:7:17 environment variable NOT_SET_ANYWHERE is not set (write ${NOT_SET_ANYWHERE:-default} for a default)']);
});

t.test('a missing required key is reported once (bug: a second "expected string" line for the same key)', async (t) => {
  const text = VALID.replace('  clientId: web-app\n', '');
  t.same(lines(parseRoutesFile(text, 'routes.yaml', ENV)), ['routes.yaml:4:3 missing required key "clientId"']);
});

t.test('two routes with the same prefix and no names are one problem, not also a duplicate name (bug: an extra "duplicate route name" line)', async (t) => {
  const text = VALID.replace('  - prefix: /\n', '  - prefix: /api/orders\n');
  t.same(lines(parseRoutesFile(text, 'routes.yaml', ENV)), ['routes.yaml:22:13 duplicate prefix /api/orders: it shadows route 1 (line of the first wins)']);
  const named = VALID.replace('  - prefix: /\n', '  - name: orders\n    prefix: /spa\n');
  t.same(lines(parseRoutesFile(named, 'routes.yaml', ENV)), ['routes.yaml:22:11 duplicate route name orders'], 'an explicit duplicate name is still reported');
});

t.test('a config with only a clientCertificate uses private_key_jwt (bug: the schema default client_secret_basic refused it)', async (t) => {
  const text = VALID.replace('  clientSecret: ${CLIENT_SECRET}\n', '  clientCertificate: { privateKeyFile: /secrets/tls.key, certificateFile: /secrets/tls.crt }\n');
  const result = parseRoutesFile(text, 'routes.yaml', ENV);
  t.same(lines(result), ['(parsed without problems)']);
  if (result.ok) t.equal(result.config.identity.authMethod, 'private_key_jwt');
  const withSecret = parseRoutesFile(VALID, 'routes.yaml', ENV);
  if (withSecret.ok) t.equal(withSecret.config.identity.authMethod, 'client_secret_basic', 'a client secret still defaults to client_secret_basic');
});

t.test('a wrong type is reported at the value with what was expected', async (t) => {
  const text = VALID.replace('port: 8080', 'port: eighty').replace('  clientId: web-app', '  clientId: [web, app]');
  t.same(lines(parseRoutesFile(text, 'routes.yaml', ENV)), ['routes.yaml:1:34 listen.port: expected integer', 'routes.yaml:6:13 identity.clientId: expected string']);
});

t.test('a YAML syntax error is reported alone, at its position', async (t) => {
  t.same(lines(parseRoutesFile('publicUrl: http://x\nidentity:\n\tprovider: oidc\n', 'routes.yaml', ENV)), ['routes.yaml:3:1 Tabs are not allowed as indentation']);
  t.same(lines(parseRoutesFile('publicUrl: http://x\nsession:\n  secret: a\n  secret: b\n', 'routes.yaml', ENV)), ['routes.yaml:4:3 Map keys must be unique']);
  t.same(lines(parseRoutesFile('publicUrl: http://x\nroutes:\n  - prefix: /api\n   upstream: x\n', 'routes.yaml', ENV)), ['routes.yaml:4:1 Sequence item without - indicator']);
  t.same(lines(parseRoutesFile('publicUrl: http://x\nsession: { secret: ${SESSION_SECRET} }\n', 'routes.yaml', ENV)), [
    'routes.yaml:2:21 Unexpected flow-map-start at node end (quote values that contain ${…} or braces inside { } and [ ])',
  ]);
});

t.test('problems name the file they are in', async (t) => {
  const found = lines(parseRoutesFile(VALID + 'colour: blue\n', '/etc/bff/routes.yaml', ENV));
  t.same(found, ['/etc/bff/routes.yaml:25:1 unknown key "colour"']);
});

interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

function runCli(args: string[], env: Record<string, string> = {}): Promise<CliResult> {
  return new Promise((resolveRun) => {
    execFile(process.execPath, [CLI, ...args], { env: { PATH: process.env.PATH ?? '', ...env }, timeout: 30_000 }, (err, stdout, stderr) => {
      const code = err ? (typeof (err as { code?: unknown }).code === 'number' ? (err as { code: number }).code : -1) : 0;
      resolveRun({ code, stdout, stderr });
    });
  });
}

async function tempDir(t: Test): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'bff-config-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

t.test('the compiled CLI exists (npm test builds before it runs the tests)', async (t) => {
  t.ok(existsSync(CLI), `${CLI} exists`);
});

t.test('bff-gateway check with a broken file exits 1 and prints FILE:LINE:COL for every problem', async (t) => {
  const dir = await tempDir(t);
  const file = join(dir, 'routes.yaml');
  await writeFile(file, VALID.replace('  clientId: web-app\n', '  clientId: web-app\n  colour: blue\n').replace('secret: ${SESSION_SECRET}', 'secret: short'));
  const res = await runCli(['check', '--config', file], ENV);
  t.equal(res.code, 1, 'exit code 1');
  t.same(res.stderr.trim().split('\n'), [`${file}:7:3 unknown key "colour"`, `${file}:11:11 session secret must be at least 32 bytes`]);
  t.equal(res.stdout, '', 'nothing claims success');
});

t.test('bff-gateway check with a valid file and a reachable provider exits 0', async (t) => {
  const provider = await startDevProvider({
    clients: [{ client_id: 'web', client_secret: 'web-secret-0123456789abcdef', redirect_uris: ['http://127.0.0.1:8080/auth/callback'] }],
    resources: { 'https://api.example.test': { scopes: ['api.read'] } },
    defaultResource: 'https://api.example.test',
  });
  t.teardown(() => provider.close());
  const dir = await tempDir(t);
  const file = join(dir, 'routes.yaml');
  await writeFile(
    file,
    `publicUrl: http://127.0.0.1:8080
identity:
  provider: oidc
  issuer: \${ISSUER}
  allowInsecureRequests: true
  clientId: web
  clientSecret: \${CLIENT_SECRET}
  scopes: [openid, offline_access, api.read]
session:
  secret: \${SESSION_SECRET}
tokenCache:
  encryptionKey: \${CACHE_KEY}
routes:
  - prefix: /api
    upstream: http://127.0.0.1:9
    auth: user
    scopes: [api.read]
  - prefix: /
    upstream: http://127.0.0.1:9
    auth: none
`,
  );
  const res = await runCli(['check', '--config', file], { ...ENV, ISSUER: provider.issuer, CLIENT_SECRET: 'web-secret-0123456789abcdef' });
  t.equal(res.code, 0, res.stderr);
  t.equal(res.stdout.trim(), `${file}: ok (2 routes)`);
  t.same(res.stderr.trim().split('\n'), [
    `${file}:8:11 warning: scopes not in the provider's scopes_supported: api.read`,
    `${file}:17:13 warning: scopes not in the provider's scopes_supported: api.read`,
  ], 'warnings (the dev provider does not list resource scopes) are printed with their position and do not fail the check');
});

t.test('bff-gateway check with an issuer nobody answers at exits 1 with a clear message', async (t) => {
  const port = await freePort();
  const dir = await tempDir(t);
  const file = join(dir, 'routes.yaml');
  await writeFile(file, VALID.replace('issuer: https://idp.example.com', `issuer: http://127.0.0.1:${port}\n  allowInsecureRequests: true\n  timeout: 2s`));
  const res = await runCli(['check', '--config', file], ENV);
  t.equal(res.code, 1, 'exit code 1');
  t.match(res.stderr, `${file}:5:11 cannot read the provider's metadata from http://127.0.0.1:${port}`, 'names the issuer line, the URL and what failed');
  t.match(res.stderr, /unreachable/, 'says the provider could not be reached');
  t.notMatch(res.stderr, /\n\s+at /, 'no stack trace');
  t.notMatch(res.stdout, /ok/);
});

t.test('bff-gateway check with a file that does not exist exits 1 and says so', async (t) => {
  const dir = await tempDir(t);
  const file = join(dir, 'missing.yaml');
  const res = await runCli(['check', '--config', file], ENV);
  t.equal(res.code, 1);
  t.equal(res.stderr.trim(), `${file}:1:1 cannot read config: ENOENT`);
});
