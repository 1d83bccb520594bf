import { readFile } from 'node:fs/promises';
import { isMap, isScalar, LineCounter, parseDocument, visit, type Document, type Node } from 'yaml';
import { FormatRegistry } from '@sinclair/typebox';
import { Value, ValueErrorType } from '@sinclair/typebox/value';
import { Config, Route, type ConfigInput } from './schema.js';
import { resolveConfig, type ConfigPath, type GatewayConfig } from './resolve.js';

if (!FormatRegistry.Has('uri')) FormatRegistry.Set('uri', (v) => URL.canParse(v));

export type Severity = 'error' | 'warning';

export interface ConfigProblem {
  file: string;
  line: number;
  col: number;
  message: string;
  severity: Severity;
}

export function formatProblem(p: ConfigProblem): string {
  return `${p.file}:${p.line}:${p.col} ${p.severity === 'warning' ? 'warning: ' : ''}${p.message}`;
}

/** Finds the line and column of a config path, for messages about a valid file. */
export type Locate = (path: ReadonlyArray<string | number>, key?: boolean) => { line: number; col: number };

export type ParseResult =
  | { ok: true; config: GatewayConfig; warnings: ConfigProblem[]; locate: Locate }
  | { ok: false; problems: ConfigProblem[] };

const VAR = /\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}/g;

/**
 * Parses routes.yaml text: YAML, `${VAR}` substitution, schema validation and the
 * cross-field checks. Every problem is reported at once with its line and column.
 */
export function parseRoutesFile(text: string, file = 'routes.yaml', env: NodeJS.ProcessEnv = process.env): ParseResult {
  const lineCounter = new LineCounter();
  const doc = parseDocument(text, { lineCounter, prettyErrors: false, uniqueKeys: true });
  const problems: ConfigProblem[] = [];
  const at = (offset: number | undefined, message: string, severity: Severity = 'error') => {
    const pos = lineCounter.linePos(offset ?? 0);
    problems.push({ file, line: pos.line, col: pos.col, message, severity });
  };

  // After the first syntax error the parser's further messages are mostly its echo.
  const syntax = doc.errors[0];
  if (syntax) {
    const hint = /flow-map|flow-seq/.test(syntax.message) ? ' (quote values that contain ${…} or braces inside { } and [ ])' : '';
    at(syntax.pos[0], syntax.message.split('\n')[0]! + hint);
    return { ok: false, problems };
  }

  visit(doc, {
    Scalar(_key, node) {
      if (typeof node.value !== 'string' || !node.value.includes('${')) return;
      node.value = node.value.replace(VAR, (_m, name: string, dflt: string | undefined) => {
        const value = env[name];
        if (value !== undefined && value !== '') return value;
        if (dflt !== undefined) return dflt;
        at(node.range?.[0], `environment variable ${name} is not set (write \${${name}:-default} for a default)`);
        return '';
      });
    },
  });

  const locate = locator(doc, lineCounter);
  // An unset variable leaves an empty value whose schema error would only repeat it.
  const unsetVariableAt = new Set(problems.map((p) => `${p.line}:${p.col}`));
  let data: unknown;
  try {
    // A small alias budget: a config has no use for the "billion laughs" an alias bomb makes.
    data = doc.toJS({ maxAliasCount: 100 }) ?? {};
  } catch (err) {
    let at: number | undefined;
    visit(doc, {
      Alias(_key, node) {
        at ??= node.range?.[0];
      },
    });
    problems.push({ file, ...lineCounter.linePos(at ?? 0), message: `cannot expand YAML aliases: ${(err as Error).message}`, severity: 'error' });
    return { ok: false, problems };
  }
  data = Value.Convert(Config, Value.Default(Config, Value.Clone(data)));
  const invalid: InvalidValue[] = [];
  if (!Value.Check(Config, data)) {
    const errors = [...Value.Errors(Config, data)];
    const missing = new Set(errors.filter((e) => e.type === ValueErrorType.ObjectRequiredProperty).map((e) => e.path));
    for (const err of errors) {
      // A missing key also fails its type check: say it once.
      if (missing.has(err.path) && err.type !== ValueErrorType.ObjectRequiredProperty) continue;
      const path = err.path.split('/').slice(1).map(unescapePointer);
      const isUnknownKey = err.type === ValueErrorType.ObjectAdditionalProperties;
      invalid.push({ path, harmless: isUnknownKey || (err.schema as { default?: unknown }).default !== undefined });
      const pos = locate(path, isUnknownKey);
      if (unsetVariableAt.has(`${pos.line}:${pos.col}`)) continue;
      problems.push({ file, ...pos, message: describeError(err.type, path, err.message, err.schema), severity: 'error' });
    }
  }

  // The cross-field checks run on a schema-invalid file too, so that one run shows every
  // problem: they see the file without its invalid values (defaults apply, a broken route is
  // left out), and say nothing about a value the schema already refused or whose parent
  // lost a value that has no default.
  const isPrefix = (a: ConfigPath, b: ConfigPath) => a.length <= b.length && a.every((seg, i) => String(seg) === String(b[i]));
  const covered = (path: ConfigPath) => invalid.some((v) => isPrefix(v.path, path) || (!v.harmless && isPrefix(path, v.path)));
  let config: GatewayConfig | undefined;
  try {
    config = resolveConfig((invalid.length ? withoutInvalid(data, invalid) : data) as ConfigInput, (path, message, severity = 'error') => {
      if (!covered(path)) problems.push({ file, ...locate(path), message, severity });
    });
  } catch (err) {
    // Too broken for the remaining cross-field checks; the schema errors say why.
    if (!invalid.length) throw err;
  }
  const errors = problems.filter((p) => p.severity === 'error');
  if (errors.length || !config) return { ok: false, problems: dedupe(problems) };
  config.sourceOf = (path) => {
    const { line, col } = locate(path);
    return `${file}:${line}:${col}`;
  };
  return { ok: true, config, warnings: problems, locate };
}

interface InvalidValue {
  path: string[];
  /** Unknown keys, and values that fall back to their default, affect no other check. */
  harmless: boolean;
}

/**
 * A copy of the config without its invalid values. An invalid list element takes its list
 * with it, except a route: a route that is still invalid without its bad values is left out
 * (a hole, so the other routes keep their index).
 */
function withoutInvalid(data: unknown, invalid: InvalidValue[]): unknown {
  const copy = Value.Clone(data) as Record<string, unknown>;
  for (const { path } of invalid) {
    let target = path;
    const parentOf = (p: string[]) => p.slice(0, -1).reduce<unknown>((node, seg) => (node && typeof node === 'object' ? (node as Record<string, unknown>)[seg] : undefined), copy);
    if (Array.isArray(parentOf(target)) && !(target.length === 2 && target[0] === 'routes')) target = target.slice(0, -1);
    const parent = parentOf(target);
    const last = target.at(-1);
    if (last !== undefined && parent && typeof parent === 'object') delete (parent as Record<string, unknown>)[last];
  }
  if (Array.isArray(copy.routes)) copy.routes.forEach((route, i, routes) => Value.Check(Route, route) || delete routes[i]);
  return copy;
}

export async function loadRoutesFile(path: string, env: NodeJS.ProcessEnv = process.env): Promise<ParseResult> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    return { ok: false, problems: [{ file: path, line: 1, col: 1, message: `cannot read config: ${(err as NodeJS.ErrnoException).code ?? String(err)}`, severity: 'error' }] };
  }
  return parseRoutesFile(text, path, env);
}

function describeError(type: ValueErrorType, path: string[], message: string, schema: { description?: string }): string {
  const name = path.join('.') || '(top level)';
  switch (type) {
    case ValueErrorType.ObjectAdditionalProperties:
      return `unknown key "${path.at(-1)}"`;
    case ValueErrorType.ObjectRequiredProperty:
      return `missing required key "${path.at(-1)}"`;
    case ValueErrorType.Union:
      return `${name}: invalid value (${schema.description ?? message})`;
    case ValueErrorType.StringPattern:
      return `${name}: invalid value (${schema.description ?? message})`;
    default:
      return `${name}: ${message.toLowerCase()}`;
  }
}

function unescapePointer(s: string): string {
  return s.replace(/~1/g, '/').replace(/~0/g, '~');
}

function dedupe(problems: ConfigProblem[]): ConfigProblem[] {
  const seen = new Set<string>();
  return problems
    .filter((p) => {
      const k = formatProblem(p);
      if (seen.has(k)) return false;
      seen.add(k);
      return true;
    })
    .sort((a, b) => a.line - b.line || a.col - b.col);
}

function locator(doc: Document, lc: LineCounter): Locate {
  return (path, key = false) => {
    // Walk down as far as the document goes; a missing key is reported at its parent.
    let node: unknown = doc.contents;
    let offset = (doc.contents as Node | null)?.range?.[0] ?? 0;
    for (let i = 0; i < path.length; i++) {
      const seg = path[i]!;
      if (isMap(node)) {
        const pair = node.items.find((p) => isScalar(p.key) && String(p.key.value) === String(seg));
        if (!pair) break;
        if (key && i === path.length - 1) {
          offset = (pair.key as Node).range?.[0] ?? offset;
          break;
        }
        node = pair.value;
        offset = (pair.value as Node | null)?.range?.[0] ?? (pair.key as Node).range?.[0] ?? offset;
      } else if (node && typeof node === 'object' && 'items' in node) {
        const item = (node as { items: unknown[] }).items[Number(seg)];
        if (!item) break;
        node = item;
        offset = (item as Node).range?.[0] ?? offset;
      } else break;
    }
    return lc.linePos(offset);
  };
}
