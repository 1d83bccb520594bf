/**
 * Summarises a V8 .cpuprofile (node --cpu-prof): self time per function and per package,
 * idle time left out. `node dist/bench/profile-summary.js FILE.cpuprofile [top]`.
 */
import { readFileSync } from 'node:fs';
import { pathToFileURL } from 'node:url';

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number; columnNumber: number };
  children?: number[];
}

interface CpuProfile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
  startTime: number;
  endTime: number;
}

export interface ProfileSummary {
  totalMs: number;
  busyMs: number;
  functions: Array<{ name: string; where: string; group: string; selfMs: number; share: number }>;
  groups: Array<{ group: string; selfMs: number; share: number }>;
  /** Total (self + callees) time of the functions of the groups asked for: where the gateway's own work goes. */
  inclusive: Array<{ name: string; where: string; group: string; totalMs: number; share: number }>;
}

/** Groups whose functions get an inclusive-time row by default: the gateway and what it adds over a bare proxy. */
export const INCLUSIVE_GROUPS = /^(src\/|@fastify\/secure-session|pino|@pinojs|keyv|@keyv|@redis|prom-client|sodium-native)/;

/** Which package (or runtime part) a frame belongs to. */
export function groupOf(url: string, functionName: string): string {
  if (!url) {
    if (functionName.startsWith('(')) return functionName; // (garbage collector), (program), (idle)
    return '(native)';
  }
  const nm = url.lastIndexOf('node_modules/');
  if (nm !== -1) {
    const rest = url.slice(nm + 'node_modules/'.length).split('/');
    return rest[0]!.startsWith('@') ? `${rest[0]}/${rest[1]}` : rest[0]!;
  }
  if (url.startsWith('node:')) {
    const m = /^node:(?:internal\/)?([^/]+)/.exec(url);
    return `node:${m?.[1] ?? url}`;
  }
  const src = /\/dist\/(src|bench|examples)\/(.*)$/.exec(url);
  if (src) return `${src[1]}/${src[2]!.replace(/\.js$/, '')}`;
  return url.replace(/^file:\/\//, '');
}

const frameKey = (n: ProfileNode) => `${n.callFrame.functionName}\u0000${n.callFrame.url}:${n.callFrame.lineNumber}`;

function where(url: string, lineNumber: number): string {
  const short = url.replace(/^.*node_modules\//, '').replace(/^file:\/\/.*\/dist\//, 'dist/');
  return url ? `${short}:${lineNumber + 1}` : '';
}

export function summarise(profile: CpuProfile, top = 25, inclusiveGroups: RegExp = INCLUSIVE_GROUPS): ProfileSummary {
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const parent = new Map<number, number>();
  for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  const selfUs = new Map<number, number>();
  for (let i = 0; i < profile.samples.length; i++) {
    const id = profile.samples[i]!;
    // timeDeltas[i] is the time before sample i; attribute the next delta to this sample.
    const dt = profile.timeDeltas[i + 1] ?? 0;
    selfUs.set(id, (selfUs.get(id) ?? 0) + dt);
  }
  const fn = new Map<string, { name: string; where: string; group: string; us: number }>();
  const groups = new Map<string, number>();
  let total = 0;
  let idle = 0;
  for (const [id, us] of selfUs) {
    const node = byId.get(id)!;
    const { functionName, url, lineNumber } = node.callFrame;
    total += us;
    if (functionName === '(idle)') {
      idle += us;
      continue;
    }
    const group = groupOf(url, functionName);
    const key = frameKey(node);
    const entry = fn.get(key) ?? { name: functionName || '(anonymous)', where: where(url, lineNumber), group, us: 0 };
    entry.us += us;
    fn.set(key, entry);
    groups.set(group, (groups.get(group) ?? 0) + us);
  }
  const busy = total - idle;
  // Inclusive time: each sample counts once for every distinct selected function on its stack.
  const incl = new Map<string, { name: string; where: string; group: string; us: number }>();
  for (const [id, us] of selfUs) {
    const seen = new Set<string>();
    for (let cur: number | undefined = id; cur !== undefined; cur = parent.get(cur)) {
      const node = byId.get(cur)!;
      const { functionName, url, lineNumber } = node.callFrame;
      const group = groupOf(url, functionName);
      if (!inclusiveGroups.test(group)) continue;
      const key = frameKey(node);
      if (seen.has(key)) continue;
      seen.add(key);
      const entry = incl.get(key) ?? { name: functionName || '(anonymous)', where: where(url, lineNumber), group, us: 0 };
      entry.us += us;
      incl.set(key, entry);
    }
  }
  return {
    inclusive: [...incl.values()]
      .sort((a, b) => b.us - a.us)
      .slice(0, top)
      .map((f) => ({ name: f.name, where: f.where, group: f.group, totalMs: f.us / 1000, share: f.us / busy })),
    totalMs: total / 1000,
    busyMs: busy / 1000,
    functions: [...fn.values()]
      .sort((a, b) => b.us - a.us)
      .slice(0, top)
      .map((f) => ({ name: f.name, where: f.where, group: f.group, selfMs: f.us / 1000, share: f.us / busy })),
    groups: [...groups.entries()]
      .sort((a, b) => b[1] - a[1])
      .map(([group, us]) => ({ group, selfMs: us / 1000, share: us / busy })),
  };
}

/** Markdown tables of a summary; with `requests` (served while profiling), times are also given per request. */
export function summaryMarkdown(title: string, s: ProfileSummary, requests?: number, topGroups = 15): string {
  const pct = (x: number) => `${(x * 100).toFixed(1)}%`;
  const per = (ms: number) => (requests ? ` | ${((ms * 1000) / requests).toFixed(1)}` : '');
  const perHead = requests ? ' | µs/req' : '';
  const perAlign = requests ? '|---:' : '';
  const lines = [
    `#### ${title}`,
    '',
    `Busy (non-idle) CPU in the profile: ${s.busyMs.toFixed(0)} ms` + (requests ? ` for ${requests} requests (${((s.busyMs * 1000) / requests).toFixed(0)} µs/req with the profiler on).` : '.'),
    '',
    `| package / part | self | share${perHead} |`,
    `|---|---:|---:${perAlign}|`,
  ];
  for (const g of s.groups.slice(0, topGroups)) lines.push(`| ${g.group} | ${g.selfMs.toFixed(0)} ms | ${pct(g.share)}${per(g.selfMs)} |`);
  lines.push('', `| function | where | self | share${perHead} |`, `|---|---|---:|---:${perAlign}|`);
  for (const f of s.functions) lines.push(`| \`${f.name}\` | ${f.where.replace(/\|/g, '\\|')} | ${f.selfMs.toFixed(0)} ms | ${pct(f.share)}${per(f.selfMs)} |`);
  if (s.inclusive.length) {
    lines.push('', 'Total time (self + callees) of gateway code and of the libraries it adds:', '', `| function | where | total | share${perHead} |`, `|---|---|---:|---:${perAlign}|`);
    for (const f of s.inclusive) lines.push(`| \`${f.name}\` | ${f.where.replace(/\|/g, '\\|')} | ${f.totalMs.toFixed(0)} ms | ${pct(f.share)}${per(f.totalMs)} |`);
  }
  return lines.join('\n') + '\n';
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  const file = process.argv[2];
  if (!file) {
    process.stderr.write('usage: node dist/bench/profile-summary.js FILE.cpuprofile [top]\n');
    process.exit(2);
  }
  const profile = JSON.parse(readFileSync(file, 'utf8')) as CpuProfile;
  process.stdout.write(summaryMarkdown(file, summarise(profile, Number(process.argv[3] ?? 30))));
}
