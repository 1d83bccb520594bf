import t from 'tap';
import { readFileSync } from 'node:fs';
import { parseRoutesFile, formatProblem } from '../../src/config/load.js';

const FILE = 'examples/entra/routes.yaml';
const dummy = {
  AZURE_TENANT_ID: '00000000-0000-0000-0000-000000000001',
  AZURE_CLIENT_ID: '00000000-0000-0000-0000-000000000002',
  AZURE_CLIENT_SECRET: 'dummy-secret',
  SESSION_SECRET: 'dummy-session-secret-0123456789abcdef',
  TOKEN_CACHE_KEY: 'dummy-token-cache-key-0123456789abcdef',
};

t.test('the Entra example routes.yaml points editors at the schema and parses with dummy values', async (t) => {
  const text = readFileSync(FILE, 'utf8');
  t.equal(text.split('\n')[0], '# yaml-language-server: $schema=../../schema/routes.schema.json');
  const parsed = parseRoutesFile(text, FILE, dummy);
  t.ok(parsed.ok, parsed.ok ? '' : parsed.problems.map(formatProblem).join('\n'));
  if (!parsed.ok) return;
  t.same(parsed.warnings.map(formatProblem), [], 'no warnings');
  t.equal(parsed.config.identity.provider, 'entra');
  t.equal(parsed.config.identity.authority, `https://login.microsoftonline.com/${dummy.AZURE_TENANT_ID}`);
  const graph = parsed.config.routes.find((r) => r.name === 'graph');
  t.equal(graph?.upstream, 'https://graph.microsoft.com/v1.0');
  t.same(graph?.scopes, ['User.Read']);
  t.equal(graph?.auth, 'user');
});
