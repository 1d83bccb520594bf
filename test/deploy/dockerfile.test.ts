// Static tests of the Dockerfile and .dockerignore (no Docker engine is needed): the
// stages, the user, the health check, the entrypoint, and that everything the image
// copies exists: package files in the repo, dist/ from `npm run build` (the test command
// builds first), and that the compiled gateway needs nothing the image leaves out.
import t from 'tap'
import { builtinModules } from 'node:module'
import { existsSync, readFileSync, readdirSync, statSync } from 'node:fs'
import { dirname, join, posix, relative, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'

const root = resolve(dirname(fileURLToPath(import.meta.url)), '../..')
const dockerfile = readFileSync(join(root, 'Dockerfile'), 'utf8')
const dockerignore = readFileSync(join(root, '.dockerignore'), 'utf8')
const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as {
  dependencies?: Record<string, string>
  optionalDependencies?: Record<string, string>
  peerDependencies?: Record<string, string>
  devDependencies?: Record<string, string>
}
const lock = JSON.parse(readFileSync(join(root, 'package-lock.json'), 'utf8')) as {
  packages: Record<string, { dev?: boolean }>
}

// ---------------------------------------------------------------------------------
// A small Dockerfile parser: continuation lines joined, comments dropped, ARG defaults
// substituted into FROM lines.

interface Instruction { cmd: string; args: string; line: number }
interface Stage { name: string; image: string; workdir: string; body: Instruction[] }

function instructions(src: string): Instruction[] {
  const out: Instruction[] = []
  const lines = src.split('\n')
  for (let i = 0; i < lines.length; i++) {
    const start = i
    if (/^\s*(#|$)/.test(lines[i])) continue
    let text = lines[i]
    while (/\\\s*$/.test(text) && i + 1 < lines.length) {
      i++
      if (/^\s*#/.test(lines[i])) continue
      text = text.replace(/\\\s*$/, ' ') + lines[i]
    }
    const m = /^\s*(\w+)\s*(.*)$/.exec(text)
    if (m) out.push({ cmd: m[1].toUpperCase(), args: m[2].trim(), line: start + 1 })
  }
  return out
}

const all = instructions(dockerfile)

function stages(): Stage[] {
  const args: Record<string, string> = {}
  const out: Stage[] = []
  for (const ins of all) {
    if (ins.cmd === 'ARG' && out.length === 0) {
      const [k, v = ''] = ins.args.split('=')
      args[k.trim()] = v.trim()
    } else if (ins.cmd === 'FROM') {
      const m = /^(?:--platform=\S+\s+)?(\S+)(?:\s+AS\s+(\S+))?$/i.exec(ins.args)
      if (!m) throw new Error(`unparsable FROM at line ${ins.line}`)
      const image = m[1].replace(/\$\{?(\w+)\}?/g, (_s, k: string) => args[k] ?? '')
      out.push({ name: m[2] ?? String(out.length), image, workdir: '/', body: [] })
    } else if (out.length > 0) {
      const s = out[out.length - 1]
      if (ins.cmd === 'WORKDIR') s.workdir = posix.resolve(s.workdir, ins.args)
      s.body.push(ins)
    }
  }
  return out
}

const parsed = stages()
const final = parsed[parsed.length - 1]
const inFinal = (cmd: string) => final.body.filter((i) => i.cmd === cmd)

/** The arguments of an exec-form (JSON) or shell-form instruction, as one string. */
function commandLine(args: string): string {
  if (args.startsWith('[')) return (JSON.parse(args) as string[]).join(' ')
  return args
}

interface Copy { from?: string; sources: string[]; dest: string; workdir: string; line: number }

function copies(stage: Stage): Copy[] {
  let workdir = '/'
  const out: Copy[] = []
  for (const ins of stage.body) {
    if (ins.cmd === 'WORKDIR') workdir = posix.resolve(workdir, ins.args)
    if (ins.cmd !== 'COPY' && ins.cmd !== 'ADD') continue
    const words = ins.args.startsWith('[') ? (JSON.parse(ins.args) as string[]) : ins.args.split(/\s+/)
    let from: string | undefined
    const rest: string[] = []
    for (const w of words) {
      const f = /^--from=(.+)$/.exec(w)
      if (f) from = f[1]
      else if (!w.startsWith('--')) rest.push(w)
    }
    const dest = rest.pop() ?? ''
    out.push({ from, sources: rest, dest, workdir, line: ins.line })
  }
  return out
}

// ---------------------------------------------------------------------------------
// .dockerignore matching, as Docker does it: patterns relative to the context root,
// `**` for any number of directories, the last matching rule wins, a directory that
// is excluded excludes what it holds.

function patternToRegExp(p: string): RegExp {
  let re = ''
  const s = posix.normalize(p.replace(/^\/+/, '')).replace(/\/$/, '')
  for (let i = 0; i < s.length; i++) {
    const c = s[i]
    if (c === '*' && s[i + 1] === '*') {
      if (s[i + 2] === '/') { re += '(?:.*/)?'; i += 2 } else { re += '.*'; i += 1 }
    } else if (c === '*') re += '[^/]*'
    else if (c === '?') re += '[^/]'
    else re += c.replace(/[.+^${}()|[\]\\]/g, '\\$&')
  }
  return new RegExp(`^${re}$`)
}

const ignoreRules = dockerignore
  .split('\n')
  .map((l) => l.trim())
  .filter((l) => l && !l.startsWith('#'))
  .map((l) => (l.startsWith('!') ? { negate: true, re: patternToRegExp(l.slice(1)) } : { negate: false, re: patternToRegExp(l) }))

function ignored(path: string): boolean {
  const parts = path.split('/')
  let excluded = false
  for (let n = 1; n <= parts.length; n++) {
    const prefix = parts.slice(0, n).join('/')
    for (const r of ignoreRules) if (r.re.test(prefix)) excluded = !r.negate
    if (excluded && n < parts.length) return true
  }
  return excluded
}

// ---------------------------------------------------------------------------------

t.test('the Dockerfile has a build stage and a separate runtime stage', async (t) => {
  t.ok(parsed.length >= 2, `${parsed.length} FROM stages`)
  const build = parsed.find((s) => s.name === 'build')
  t.ok(build, 'a stage is named build')
  t.not(final.name, 'build', 'the final stage is not the build stage')
  const buildRuns = build ? build.body.filter((i) => i.cmd === 'RUN').map((i) => i.args).join('\n') : ''
  t.match(buildRuns, /npm ci(?![^\n]*--omit=dev)/, 'the build stage installs all dependencies, dev ones included')
  t.match(buildRuns, /npm run build/, 'the build stage runs npm run build')
})

t.test('every stage uses a current LTS Node image on Debian (glibc, for sodium-native)', async (t) => {
  for (const s of parsed) {
    t.match(s.image, /^node:(22|24)(\.\d+)*-(bookworm|trixie)(-slim)?(@sha256:[a-f0-9]{64})?$/, `stage ${s.name}: ${s.image}`)
    t.notMatch(s.image, /alpine/, `stage ${s.name} is not musl`)
  }
})

t.test('the runtime stage installs production dependencies only', async (t) => {
  const runs = inFinal('RUN').map((i) => i.args).join('\n')
  const ci = /npm ci\b[^\n&|;]*/.exec(runs)?.[0] ?? ''
  const pruned = /npm prune\b[^\n]*--omit=dev/.test(runs)
  t.ok(/--omit=dev/.test(ci) || pruned, `npm ci --omit=dev (or npm prune --omit=dev) in the runtime stage: "${ci}"`)
  t.notMatch(runs, /npm run build|\btsc\b/, 'no compiling in the runtime stage')
  for (const c of copies(final)) {
    if (c.from) t.notOk(c.sources.some((s) => /node_modules/.test(s)), `line ${c.line}: node_modules (with dev dependencies) is not copied from ${c.from}`)
  }
})

t.test('the runtime stage sets NODE_ENV=production and BFF_CONFIG=/config/routes.yaml', async (t) => {
  const env = inFinal('ENV').map((i) => i.args).join(' ')
  t.match(env, /\bNODE_ENV=production\b/)
  t.match(env, /\bBFF_CONFIG=\/config\/routes\.yaml\b/)
})

t.test('the runtime stage runs as a user that is not root', async (t) => {
  const users = inFinal('USER')
  t.ok(users.length > 0, 'the final stage has a USER')
  const last = users[users.length - 1]?.args ?? 'root'
  const [user, group] = last.split(':')
  t.notOk(['root', '0'].includes(user), `USER ${last} is not root`)
  if (group !== undefined) t.notOk(['root', '0'].includes(group), `group ${group} is not root`)
  t.match(user, /^\d+$/, 'the user is numeric, so Kubernetes runAsNonRoot can verify it')
  const entry = final.body.findIndex((i) => i.cmd === 'ENTRYPOINT' || i.cmd === 'CMD')
  const userAt = final.body.lastIndexOf(users[users.length - 1])
  t.ok(userAt >= 0 && (entry < 0 || userAt < entry), 'USER comes before the entrypoint')
  const helm = readFileSync(join(root, 'helm/bff-gateway/values.yaml'), 'utf8')
  t.match(helm, new RegExp(`runAsUser: ${user}\\b`), 'the Helm chart runs as the same uid')
})

t.test('the image has a HEALTHCHECK that asks /healthz with node itself', async (t) => {
  const hc = inFinal('HEALTHCHECK')
  t.equal(hc.length, 1, 'one HEALTHCHECK in the runtime stage')
  const args = hc[0]?.args ?? ''
  const cmd = /\bCMD\s+(.*)$/.exec(args)?.[1] ?? ''
  t.ok(cmd, 'HEALTHCHECK CMD …')
  const line = commandLine(cmd)
  t.match(line, /^node /, 'node runs the check (no curl or wget in a slim image)')
  t.match(line, /http:\/\/127\.0\.0\.1:8080\/healthz/)
  t.match(line, /process\.exit\(r\.ok\?0:1\)/, 'exits non-zero when /healthz is not ok')
  t.match(args, /--interval=\d+s/)
  t.match(args, /--timeout=\d+s/)
})

t.test('the entrypoint runs dist/src/cli.js where the image holds it', async (t) => {
  const entry = inFinal('ENTRYPOINT').concat(inFinal('CMD')).map((i) => commandLine(i.args)).join(' ')
  t.match(entry, /^node dist\/src\/cli\.js\b/)
  t.notMatch(entry, /npm (start|run)/, 'node is PID 1 and gets SIGTERM itself, not npm')
  t.equal(final.workdir, '/app')
  const landed = copies(final).filter((c) => c.from).map((c) => posix.resolve(c.workdir, c.dest))
  t.ok(landed.some((d) => posix.join(final.workdir, 'dist/src/cli.js').startsWith(d.replace(/\/?$/, '/'))), 'dist/src lands at /app/dist/src')
  t.ok(inFinal('EXPOSE').some((i) => /\b8080\b/.test(i.args)), 'EXPOSE 8080')
})

t.test('every COPY --from=build source is something npm run build produces or a repo package file', async (t) => {
  const names = new Set(parsed.map((s) => s.name))
  const froms = parsed.flatMap((s) => copies(s).filter((c) => c.from))
  t.ok(froms.length > 0, 'the runtime stage copies from the build stage')
  for (const c of froms) {
    t.ok(names.has(c.from ?? ''), `line ${c.line}: stage ${c.from} exists`)
    const build = parsed.find((s) => s.name === c.from)
    for (const src of c.sources) {
      const rel = posix.relative(build?.workdir ?? '/', posix.resolve(c.workdir, src))
      if (rel.startsWith('dist/') || rel === 'dist') {
        t.ok(existsSync(join(root, rel)), `line ${c.line}: ${rel} exists after npm run build`)
      } else {
        t.ok(['package.json', 'package-lock.json'].includes(rel) && existsSync(join(root, rel)), `line ${c.line}: ${rel} is a package file in the repo`)
      }
    }
  }
})

t.test('every COPY from the build context names a repo path that .dockerignore lets through', async (t) => {
  for (const s of parsed) {
    for (const c of copies(s).filter((x) => !x.from)) {
      for (const src of c.sources) {
        const rel = posix.normalize(src).replace(/\/$/, '')
        t.ok(existsSync(join(root, rel)), `line ${c.line}: ${rel} exists in the repo`)
        t.notOk(ignored(rel), `line ${c.line}: ${rel} is not excluded by .dockerignore`)
      }
    }
  }
  for (const needed of ['package.json', 'package-lock.json', 'tsconfig.json', 'src/cli.ts']) {
    t.notOk(ignored(needed), `${needed} reaches the build`)
  }
})

t.test('.dockerignore keeps node_modules, build output, git and test artefacts out', async (t) => {
  for (const p of ['node_modules', 'node_modules/fastify/package.json', 'dist/src/cli.js', '.git/HEAD', '.tap/processinfo', 'bench/results/run.json', 'test/deploy/helm.test.ts', 'docs/screenshots/login.png']) {
    t.ok(ignored(p), `${p} is excluded`)
  }
})

t.test('dist/src/cli.js exists after npm run build', async (t) => {
  t.ok(existsSync(join(root, 'dist/src/cli.js')), 'run npm run build first (npm test does)')
})

t.test('the compiled gateway imports only production dependencies and files the image holds', async (t) => {
  const dist = join(root, 'dist/src')
  if (!existsSync(dist)) {
    t.fail('dist/src does not exist: run npm run build first')
    return
  }
  const shipped = copies(final).filter((c) => c.from).flatMap((c) => c.sources.map((s) => posix.relative('/app', s)))
  const prodDeps = new Set([
    ...Object.keys(pkg.dependencies ?? {}),
    ...Object.keys(pkg.optionalDependencies ?? {}),
    ...Object.keys(pkg.peerDependencies ?? {}),
  ])
  const builtins = new Set(builtinModules)
  const files: string[] = []
  const walk = (d: string) => {
    for (const f of readdirSync(d)) {
      const p = join(d, f)
      if (statSync(p).isDirectory()) walk(p)
      else if (/\.(js|mjs|cjs)$/.test(f)) files.push(p)
    }
  }
  walk(dist)
  t.ok(files.length > 0, 'dist/src holds JavaScript')
  const problems: string[] = []
  const IMPORT = /(?:^|[;\s])(?:import|export)\s(?:[^'";]*?\sfrom\s*)?['"]([^'"\n]+)['"]|\bimport\(\s*['"]([^'"\n]+)['"]\s*\)/g
  for (const file of files) {
    const src = readFileSync(file, 'utf8')
    for (const m of src.matchAll(IMPORT)) {
      const spec = m[1] ?? m[2]
      const where = relative(root, file)
      if (spec.startsWith('.') || spec.startsWith('/')) {
        const target = posix.normalize(relative(root, resolve(dirname(file), spec)).split('\\').join('/'))
        if (!shipped.some((s) => target === s || target.startsWith(s.replace(/\/?$/, '/')))) {
          problems.push(`${where}: ${spec} resolves to ${target}, which the image does not copy`)
        } else if (!existsSync(join(root, target))) {
          problems.push(`${where}: ${spec} resolves to ${target}, which does not exist`)
        }
        continue
      }
      if (spec.startsWith('node:') || builtins.has(spec)) continue
      const name = spec.startsWith('@') ? spec.split('/').slice(0, 2).join('/') : spec.split('/')[0]
      if (!prodDeps.has(name)) {
        problems.push(`${where}: imports ${name}, which is not in package.json dependencies (npm ci --omit=dev leaves ${pkg.devDependencies?.[name] ? 'dev dependencies' : 'undeclared packages'} to chance)`)
      } else if (lock.packages[`node_modules/${name}`]?.dev) {
        problems.push(`${where}: imports ${name}, which package-lock.json marks dev-only`)
      }
    }
  }
  t.same(problems, [], 'every import is satisfied in the runtime image')
})
