import t from 'tap';
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, isAbsolute, join, relative, resolve } from 'node:path';
import { Ajv } from 'ajv';
import { parseDocument } from 'yaml';
import { formatProblem, parseRoutesFile } from '../../src/config/load.js';
import { DRAFT_07, renderSchema, SCHEMA_FILE } from '../../scripts/write-schema.js';
import { repoRoot } from '../../scripts/repo-root.js';

const ROOT = repoRoot();
const SCHEMA_PATH = join(ROOT, SCHEMA_FILE);
const SKIP_DIRS = new Set(['node_modules', 'dist', '.git', '.tap', 'helm', 'coverage']);
const VAR = /\$\{([A-Za-z_][A-Za-z0-9_]*)(:-[^}]*)?\}/g;
const MODELINE = /^# yaml-language-server: \$schema=(\S+)\s*$/;

/** routes.yaml and *.routes.yaml files of the repo (helm/ holds values.yaml, not routes files). */
function routesFiles(dir = ROOT): string[] {
  const out: string[] = [];
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    if (entry.isDirectory()) {
      if (!SKIP_DIRS.has(entry.name)) out.push(...routesFiles(join(dir, entry.name)));
    } else if (entry.name === 'routes.yaml' || entry.name.endsWith('.routes.yaml')) out.push(join(dir, entry.name));
  }
  return out.sort();
}

/** A plausible value for each ${VAR} the file uses without a default. */
function dummyEnv(text: string): Record<string, string> {
  const env: Record<string, string> = {};
  for (const [, name, dflt] of text.matchAll(VAR)) {
    if (dflt !== undefined || name === undefined) continue;
    if (/PORT$/.test(name)) env[name] = '8080';
    else if (/URL|URI|ISSUER|AUTHORITY|UPSTREAM|ENDPOINT|API$/.test(name)) env[name] = 'https://example.test';
    else env[name] = `dummy-${name.toLowerCase()}-0123456789abcdef0123456789abcdef`;
  }
  return env;
}

function editorValidator() {
  const ajv = new Ajv({ allErrors: true, strict: true, formats: { uri: (s: string) => URL.canParse(s) } });
  return ajv.compile(JSON.parse(readFileSync(SCHEMA_PATH, 'utf8')) as object);
}

t.test('the committed schema file is exactly what npm run schema writes', async (t) => {
  const committed = readFileSync(SCHEMA_PATH, 'utf8');
  t.equal(committed, renderSchema(), `${SCHEMA_FILE} is out of date: run npm run schema and commit it`);
  const schema = JSON.parse(committed) as Record<string, unknown>;
  t.equal(schema.$schema, DRAFT_07, 'it declares draft-07');
  t.equal(Object.keys(schema)[0], '$schema', '$schema comes first');
  t.equal(renderSchema(), renderSchema(), 'the output is stable from one run to the next');
});

t.test('the schema file is valid draft-07 JSON Schema that ajv compiles in strict mode', async (t) => {
  t.doesNotThrow(() => editorValidator());
});

const files = routesFiles();

t.test('the repository has example routes files to check', async (t) => {
  const names = files.map((f) => relative(ROOT, f));
  t.ok(names.includes('routes.yaml'), 'routes.yaml');
  t.ok(names.includes(join('examples', 'demo', 'routes.yaml')), 'examples/demo/routes.yaml');
});

for (const file of files) {
  const name = relative(ROOT, file);
  t.test(`${name} names the schema on its first line by a correct relative path and is a valid config`, async (t) => {
    const text = readFileSync(file, 'utf8');
    const first = text.split('\n', 1)[0] ?? '';
    const m = MODELINE.exec(first);
    t.ok(m, `the first line is "# yaml-language-server: $schema=…" (found ${JSON.stringify(first)})`);
    if (m) {
      const target = m[1]!;
      t.notOk(isAbsolute(target) || /^[a-z]+:/i.test(target), 'the schema path is relative');
      t.equal(resolve(dirname(file), target), SCHEMA_PATH, `${target} from ${dirname(name) || '.'} points at ${SCHEMA_FILE}`);
    }

    const parsed = parseRoutesFile(text, name, dummyEnv(text));
    t.ok(parsed.ok, parsed.ok ? 'parseRoutesFile accepts it' : parsed.problems.map(formatProblem).join('\n'));
    if (parsed.ok) t.same(parsed.warnings.map(formatProblem), [], 'without warnings');

    // What an editor sees: the raw file, placeholders and all.
    const validate = editorValidator();
    const raw = parseDocument(text).toJS() as unknown;
    t.ok(validate(raw), `the editor schema accepts the file as written: ${JSON.stringify(validate.errors)}`);
  });
}

t.test('the editor schema and the gateway agree on small documents', async (t) => {
  const validate = editorValidator();
  const env = { SECRET: 'x'.repeat(40), PORT: '9000' };
  const base = `publicUrl: https://app.example.com
identity: { provider: oidc, issuer: 'https://idp.example.com', clientId: web, clientSecret: '\${SECRET}' }
session: { secret: '\${SECRET}' }
tokenCache: { encryptionKey: '\${SECRET}' }
routes:
  - { prefix: /, upstream: 'http://spa:80', auth: none }
`;
  const cases: Array<[string, string, boolean]> = [
    ['a minimal config', base, true],
    ['listen with a port only (host has a default)', base + 'listen: { port: 9000 }\n', true],
    ['a placeholder for the port', base + 'listen:\n  port: ${PORT}\n', true],
    ['an unknown top-level key', base + 'colour: blue\n', false],
    ['an unknown auth mode', base.replace('auth: none', 'auth: anyone'), false],
    ['a port out of range', base + 'listen: { port: 70000 }\n', false],
    ['a malformed duration', base + 'shutdownGracePeriod: soon\n', false],
    ['no routes', base.replace(/routes:[\s\S]*$/, 'routes: []\n'), false],
  ];
  for (const [what, text, valid] of cases) {
    const gateway = parseRoutesFile(text, 'routes.yaml', env);
    t.equal(gateway.ok, valid, `the gateway ${valid ? 'accepts' : 'refuses'} ${what}`);
    t.equal(validate(parseDocument(text).toJS()), valid, `the editor schema ${valid ? 'accepts' : 'refuses'} ${what}`);
  }
});
