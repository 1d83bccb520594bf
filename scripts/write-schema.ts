/**
 * Writes the routes.yaml JSON Schema for editors: schema/routes.schema.json.
 *
 *   npm run schema
 *
 * It is the TypeBox `Config` schema of src/config/schema.ts as draft-07 JSON Schema, with
 * two allowances for what an editor sees (the raw file) and the gateway does not:
 * - a key with a default is not required (the gateway fills defaults in first);
 * - wherever a value has a type or format a placeholder would fail (a port, a boolean, a
 *   URL pattern, one of a list of words), a `${VAR}` / `${VAR:-default}` string is accepted
 *   too, because the gateway substitutes those from the environment before it validates.
 *   Without that, an editor would flag every placeholder in a correct file.
 *
 * Keys come out in a stable order: schema keywords sorted (`$schema`, `$id`, `title`,
 * `description` first), property names in the order the TypeBox schema declares them.
 */
import { mkdir, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { Config } from '../src/config/schema.js';
import { isMain, repoRoot } from './repo-root.js';

export const SCHEMA_FILE = 'schema/routes.schema.json';
export const DRAFT_07 = 'http://json-schema.org/draft-07/schema#';

type Json = null | boolean | number | string | Json[] | { [key: string]: Json };
type JsonObject = { [key: string]: Json };

const PLACEHOLDER_REF = '#/definitions/placeholder';
const PLACEHOLDER: JsonObject = {
  type: 'string',
  pattern: '\\$\\{[A-Za-z_][A-Za-z0-9_]*(:-[^}]*)?\\}',
  description: 'A ${VAR} or ${VAR:-default} placeholder: the gateway replaces it from the environment before it validates the file.',
};

const isObject = (v: Json | undefined): v is JsonObject => typeof v === 'object' && v !== null && !Array.isArray(v);

/** A scalar schema whose constraints a placeholder string would fail. */
function isConstrainedScalar(s: JsonObject): boolean {
  if (s.const !== undefined || s.enum !== undefined) return true;
  if (s.type === 'integer' || s.type === 'number' || s.type === 'boolean') return true;
  return s.type === 'string' && (s.pattern !== undefined || s.format !== undefined);
}

function orPlaceholder(schema: JsonObject, members: Json[]): JsonObject {
  const out: JsonObject = {};
  for (const key of ['description', 'default'] as const) if (schema[key] !== undefined) out[key] = schema[key];
  out.anyOf = [...members, { $ref: PLACEHOLDER_REF }];
  return out;
}

function withoutDocs(schema: JsonObject): JsonObject {
  const { description: _d, default: _v, ...rest } = schema;
  return rest;
}

/** Lets every constrained scalar also be a placeholder; recurses through objects, arrays and unions. */
function allowPlaceholders(schema: JsonObject): JsonObject {
  if (Array.isArray(schema.anyOf)) {
    const members = schema.anyOf.filter(isObject);
    if (members.every((m) => isConstrainedScalar(m) && !m.anyOf)) return orPlaceholder(schema, members.map(withoutDocs));
    return { ...schema, anyOf: members.map(allowPlaceholders) };
  }
  if (isConstrainedScalar(schema)) return orPlaceholder(schema, [withoutDocs(schema)]);
  const out: JsonObject = { ...schema };
  // The gateway fills defaults in before it validates: a key with a default is never missing.
  if (Array.isArray(schema.required) && isObject(schema.properties)) {
    const props = schema.properties;
    const required = schema.required.filter((k) => typeof k === 'string' && !(isObject(props[k]) && props[k].default !== undefined));
    if (required.length) out.required = required;
    else delete out.required;
  }
  for (const key of ['properties', 'patternProperties'] as const) {
    const map = schema[key];
    if (isObject(map)) out[key] = Object.fromEntries(Object.entries(map).map(([k, v]) => [k, isObject(v) ? allowPlaceholders(v) : v]));
  }
  if (isObject(schema.items)) out.items = allowPlaceholders(schema.items);
  if (isObject(schema.additionalProperties)) out.additionalProperties = allowPlaceholders(schema.additionalProperties);
  return out;
}

const FIRST = ['$schema', '$id', 'title', 'description'];
/** Maps whose keys are names chosen by the schema's author, not keywords: keep their order. */
const NAME_MAPS = new Set(['properties', 'patternProperties', 'definitions']);

function canonical(value: Json, keysAreNames = false): Json {
  if (Array.isArray(value)) return value.map((v) => canonical(v));
  if (!isObject(value)) return value;
  const keys = Object.keys(value);
  if (!keysAreNames) {
    keys.sort((a, b) => {
      const ia = FIRST.indexOf(a);
      const ib = FIRST.indexOf(b);
      if (ia !== -1 || ib !== -1) return (ia === -1 ? FIRST.length : ia) - (ib === -1 ? FIRST.length : ib);
      return a < b ? -1 : a > b ? 1 : 0;
    });
  }
  const out: JsonObject = {};
  for (const key of keys) out[key] = canonical(value[key]!, !keysAreNames && NAME_MAPS.has(key));
  return out;
}

/** The editor schema as a JSON value. */
export function buildSchema(): JsonObject {
  // JSON round trip: drops TypeBox's symbol keys ([Kind], [OptionalKind]).
  const plain = JSON.parse(JSON.stringify(Config)) as JsonObject;
  const schema: JsonObject = {
    $schema: DRAFT_07,
    ...allowPlaceholders(plain),
    description:
      'bff-gateway configuration (routes.yaml). Any value may be written as ${VAR} or ${VAR:-default}; the gateway replaces it from the environment. Unknown keys are errors. Durations are strings like 30s, 15m, 8h.',
    definitions: { placeholder: PLACEHOLDER },
  };
  return canonical(schema) as JsonObject;
}

/** The exact text of schema/routes.schema.json. */
export function renderSchema(): string {
  return JSON.stringify(buildSchema(), null, 2) + '\n';
}

export async function writeSchema(root = repoRoot()): Promise<string> {
  const file = join(root, SCHEMA_FILE);
  await mkdir(dirname(file), { recursive: true });
  await writeFile(file, renderSchema());
  return file;
}

if (isMain(import.meta.url)) {
  writeSchema().then(
    (file) => console.log(`wrote ${file}`),
    (err: Error) => {
      console.error(`write-schema: ${err.message}`);
      process.exit(1);
    },
  );
}
