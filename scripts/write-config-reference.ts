/**
 * Writes the routes.yaml reference into README.md, between
 * `<!-- config-reference:start -->` and `<!-- config-reference:end -->`.
 *
 *   npm run docs
 *
 * One row per key of the TypeBox `Config` schema (src/config/schema.ts): its path
 * (`identity.clientSecret`, `routes[].prefix`), type, whether it is required, its default
 * and its description. Creates README.md (with a Quick start) when there is none; in an
 * existing README only the text between the markers changes.
 */
import { existsSync } from 'node:fs';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Config } from '../src/config/schema.js';
import { isMain, repoRoot } from './repo-root.js';

export const START = '<!-- config-reference:start -->';
export const END = '<!-- config-reference:end -->';

type Schema = {
  type?: string;
  description?: string;
  default?: unknown;
  const?: unknown;
  pattern?: string;
  format?: string;
  anyOf?: Schema[];
  items?: Schema;
  properties?: Record<string, Schema>;
  patternProperties?: Record<string, Schema>;
  required?: string[];
  minimum?: number;
  maximum?: number;
};

export interface ReferenceRow {
  key: string;
  type: string;
  required: boolean;
  default?: unknown;
  description: string;
}

const DURATION = '^[0-9]+(ms|s|m|h|d)$';

function typeOf(s: Schema): string {
  if (s.anyOf) {
    if (s.anyOf.every((m) => m.const !== undefined)) return s.anyOf.map((m) => JSON.stringify(m.const)).join(' | ');
    return [...new Set(s.anyOf.map(typeOf))].join(' | ');
  }
  if (s.const !== undefined) return JSON.stringify(s.const);
  switch (s.type) {
    case 'string':
      if (s.pattern === DURATION) return 'duration';
      if (s.format === 'uri') return 'URL';
      return 'string';
    case 'integer':
      return s.minimum !== undefined && s.maximum !== undefined ? `integer (${s.minimum}–${s.maximum})` : 'integer';
    case 'array':
      if (s.items?.properties) return 'list of objects';
      return s.items ? `${typeOf(s.items)}[]` : 'list';
    case 'object':
      if (s.patternProperties) {
        const value = Object.values(s.patternProperties)[0];
        return `map of string → ${value ? typeOf(value) : 'any'}`;
      }
      return 'object';
    default:
      return s.type ?? 'any';
  }
}

/** Every key of the schema, depth first, in declaration order. */
export function referenceRows(schema: Schema = JSON.parse(JSON.stringify(Config)) as Schema): ReferenceRow[] {
  const rows: ReferenceRow[] = [];
  const walk = (s: Schema, prefix: string) => {
    const required = new Set(s.required ?? []);
    for (const [name, child] of Object.entries(s.properties ?? {})) {
      const key = prefix + name;
      rows.push({
        key,
        type: typeOf(child),
        // A key with a default is filled in when missing.
        required: required.has(name) && child.default === undefined,
        default: child.default,
        description: child.description ?? child.items?.description ?? '',
      });
      if (child.properties) walk(child, key + '.');
      else if (child.type === 'array' && child.items?.properties) walk(child.items, key + '[].');
    }
  };
  walk(schema, '');
  return rows;
}

function cell(text: string): string {
  return text.replace(/\s*\n\s*/g, ' ').replace(/\\/g, '\\\\').replace(/\|/g, '\\|').replace(/</g, '&lt;').replace(/>/g, '&gt;');
}

function code(text: string): string {
  const escaped = text.replace(/\|/g, '\\|');
  return escaped.includes('`') ? `\`\` ${escaped} \`\`` : `\`${escaped}\``;
}

function defaultCell(value: unknown): string {
  if (value === undefined) return '';
  return code(typeof value === 'string' ? value : JSON.stringify(value));
}

/** The generated markdown that goes between the markers (without them). */
export function renderReference(rows: ReferenceRow[] = referenceRows()): string {
  const lines = [
    '',
    '| Key | Type | Required | Default | Description |',
    '|---|---|---|---|---|',
    ...rows.map((r) => `| ${code(r.key)} | ${code(r.type)} | ${r.required ? 'yes' : ''} | ${defaultCell(r.default)} | ${cell(r.description)} |`),
    '',
  ];
  return lines.join('\n');
}

/** Parses the reference table back (the keys, in order), from a whole README. */
export function parseReferenceKeys(readme: string): string[] {
  const section = referenceSection(readme);
  if (section === undefined) throw new Error(`README has no ${START} … ${END} section`);
  const keys: string[] = [];
  for (const line of section.split('\n')) {
    const m = /^\|\s*`([^`]+)`\s*\|/.exec(line);
    if (m) keys.push(m[1]!);
  }
  return keys;
}

/** The text between the markers, or undefined when the README has none. */
export function referenceSection(readme: string): string | undefined {
  const start = readme.indexOf(START);
  const end = readme.indexOf(END, start);
  if (start === -1 || end === -1) return undefined;
  return readme.slice(start + START.length, end);
}

export const NEW_README = `# bff-gateway

An authenticating backend-for-frontend (BFF) gateway for single-page apps. It signs users in
with OpenID Connect, keeps their tokens on the server, and proxies the SPA's API calls with
\`Authorization: Bearer …\` injected for each route's scopes. The browser only ever holds an
encrypted, HttpOnly session cookie.

![The demo SPA, signed in, showing what the API saw](docs/demo.png)

## Quick start

Run the demo (a development OpenID provider, a sample API, a sample SPA and the gateway in
front of them) and open the URL it prints; any user name signs in:

\`\`\`sh
npm ci && npm run demo
\`\`\`

Run the tests:

\`\`\`sh
npm ci && npm test
\`\`\`

## Configuration

One file, \`routes.yaml\`, configures the gateway; \`\${VAR}\` and \`\${VAR:-default}\` are
replaced from the environment. Editors that use the YAML language server validate and
complete it through its first line:

\`\`\`yaml
# yaml-language-server: $schema=./schema/routes.schema.json
\`\`\`

\`bff-gateway check --config routes.yaml\` validates a file and prints every problem as
\`routes.yaml:LINE:COL message\`.

### Reference

Generated from \`src/config/schema.ts\` by \`npm run docs\`; a test fails when the two disagree.

${START}
${END}
`;

/** README text with the reference replaced between the markers (or a new README). */
export function updateReadme(readme: string | undefined, reference = renderReference()): string {
  const text = readme ?? NEW_README;
  const start = text.indexOf(START);
  const end = text.indexOf(END, start);
  if (start === -1 || end === -1) {
    throw new Error(`README.md has no ${START} … ${END} markers: add them where the configuration reference belongs`);
  }
  return text.slice(0, start + START.length) + reference + text.slice(end);
}

export async function writeConfigReference(root = repoRoot()): Promise<string> {
  const file = join(root, 'README.md');
  const current = existsSync(file) ? await readFile(file, 'utf8') : undefined;
  const next = updateReadme(current);
  if (next !== current) await writeFile(file, next);
  return file;
}

if (isMain(import.meta.url)) {
  writeConfigReference().then(
    (file) => console.log(`wrote the configuration reference into ${file}`),
    (err: Error) => {
      console.error(`write-config-reference: ${err.message}`);
      process.exit(1);
    },
  );
}
