import t from 'tap';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { TSchema } from '@sinclair/typebox';
import { Config } from '../../src/config/schema.js';
import { repoRoot } from '../../scripts/repo-root.js';
import { END, NEW_README, parseReferenceKeys, referenceSection, renderReference, START, updateReadme } from '../../scripts/write-config-reference.js';

const README = join(repoRoot(), 'README.md');

/** Every key path of the TypeBox schema, walked here independently of the generator. */
function schemaKeys(schema: TSchema, prefix = ''): string[] {
  const keys: string[] = [];
  const properties = (schema as { properties?: Record<string, TSchema> }).properties ?? {};
  for (const [name, child] of Object.entries(properties)) {
    const key = prefix + name;
    keys.push(key);
    const c = child as { type?: string; properties?: object; items?: TSchema & { properties?: object } };
    if (c.properties) keys.push(...schemaKeys(child, key + '.'));
    if (c.type === 'array' && c.items?.properties) keys.push(...schemaKeys(c.items, key + '[].'));
  }
  return keys;
}

t.test('every key in the README reference exists in the schema and every schema key is documented', async (t) => {
  const readme = readFileSync(README, 'utf8');
  const documented = parseReferenceKeys(readme);
  const keys = schemaKeys(Config);
  t.ok(keys.length > 30, `the schema walk finds the keys (${keys.length})`);
  t.same(documented.filter((k) => !keys.includes(k)), [], 'no documented key is missing from the schema');
  t.same(keys.filter((k) => !documented.includes(k)), [], 'no schema key is missing from the README');
  t.equal(new Set(documented).size, documented.length, 'no key is documented twice');
  for (const key of ['identity.clientSecret', 'routes[].scopes', 'tokenCache.encryptionKey', 'listen.port']) {
    t.ok(documented.includes(key), `${key} is documented`);
  }
});

t.test('the README reference is exactly what npm run docs generates', async (t) => {
  const readme = readFileSync(README, 'utf8');
  t.equal(referenceSection(readme), renderReference(), 'README.md is out of date: run npm run docs');
});

t.test('each reference row gives the type, default and description from the schema', async (t) => {
  const section = referenceSection(readFileSync(README, 'utf8')) ?? '';
  const row = (key: string) => section.split('\n').find((l) => l.startsWith(`| \`${key}\` |`)) ?? '';
  t.match(row('listen.port'), /\| `8080` \| Port to listen on/, 'listen.port: default 8080 and its description');
  t.match(row('session.idleTimeout'), /`duration`.*`30m`/, 'durations are typed and their defaults shown');
  t.match(row('routes[].auth'), /`"user" \\\| "client" \\\| "user-or-client" \\\| "none"` \| yes \|/, 'unions list their values; required keys say so');
  t.match(row('identity.clientSecret'), /\| `string` \|  \|  \| Client secret/, 'optional keys without default leave those cells empty');
});

t.test('the generator only replaces the text between the markers', async (t) => {
  const before = `# Title\n\nIntro.\n\n${START}\nold table\n${END}\n\n## After\n`;
  const after = updateReadme(before, '\nnew table\n');
  t.equal(after, `# Title\n\nIntro.\n\n${START}\nnew table\n${END}\n\n## After\n`);
  t.equal(updateReadme(after, '\nnew table\n'), after, 'running it twice changes nothing');
  t.throws(() => updateReadme('# No markers\n'), /markers/, 'a README without markers is refused, not rewritten');
});

t.test('a new README gets the Quick start commands and the reference', async (t) => {
  const created = updateReadme(undefined);
  t.match(created, /## Quick start/);
  t.ok(created.includes('npm ci && npm run demo'), 'the demo command');
  t.ok(created.includes('npm ci && npm test'), 'the test command');
  t.same(parseReferenceKeys(created), schemaKeys(Config), 'and the full reference');
  t.equal(NEW_README.indexOf(START) < NEW_README.indexOf(END), true);
});
