// Static tests of the Helm chart in helm/bff-gateway. No helm binary is needed: the
// values are checked against values.schema.json with ajv, every template is checked for
// balanced blocks and, after a best-effort render that drops the template actions,
// parsed as YAML; the Deployment and the guards are checked for what they must contain.
// Where helm exists, .ci/helm-check.sh also runs `helm lint` and `helm template`.
import t from 'tap'
import { Ajv } from 'ajv'
import { parse, parseAllDocuments, stringify } from 'yaml'
import { randomBytes } from 'node:crypto'
import { existsSync, readFileSync, readdirSync } from 'node:fs'
import { dirname, join, resolve } from 'node:path'
import { fileURLToPath, pathToFileURL } from 'node:url'

type Json = null | boolean | number | string | Json[] | { [key: string]: Json }
type Obj = { [key: string]: Json }

const root = resolve(dirname(fileURLToPath(import.meta.url)), '../..')
const chart = join(root, 'helm/bff-gateway')
const templates = join(chart, 'templates')
const read = (p: string): string => readFileSync(join(chart, p), 'utf8')

const values = parse(read('values.yaml')) as Obj
const schema = JSON.parse(read('values.schema.json')) as Obj
const config = values.config as Obj

const isObj = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v)

function get(obj: Json | undefined, path: string): Json | undefined {
  let cur: Json | undefined = obj
  for (const key of path.split('.')) {
    if (key === '') continue
    if (Array.isArray(cur)) cur = cur[Number(key)]
    else if (isObj(cur)) cur = cur[key]
    else return undefined
  }
  return cur
}

function compile() {
  const ajv = new Ajv({ allErrors: true, strict: true, allowUnionTypes: true })
  return ajv.compile(schema)
}

const clone = <T>(v: T): T => structuredClone(v)

// ---------------------------------------------------------------------------------
// Template helpers: actions, block balance, a best-effort render.

const ACTION = /\{\{(-?)([\s\S]*?)(-?)\}\}/g

/** The inside of every `{{ … }}` action, comments left out. */
function actions(src: string): string[] {
  const out: string[] = []
  for (const m of src.matchAll(ACTION)) {
    const body = m[2].trim()
    if (body.startsWith('/*')) continue
    out.push(body)
  }
  return out
}

/** Problems with the nesting of if/with/range/define/block … end, in order. */
function blockProblems(src: string): string[] {
  const stack: string[] = []
  const problems: string[] = []
  for (const body of actions(src)) {
    const word = /^(\w+)/.exec(body)?.[1]
    if (word === 'if' || word === 'with' || word === 'range' || word === 'define' || word === 'block') {
      stack.push(body)
    } else if (word === 'else') {
      if (stack.length === 0) problems.push(`{{ ${body} }} outside any block`)
    } else if (word === 'end') {
      if (stack.pop() === undefined) problems.push('{{ end }} without an opening block')
    }
  }
  for (const open of stack) problems.push(`{{ ${open} }} is never closed`)
  return problems
}

const LABELS = 'app.kubernetes.io/name: bff-gateway\napp.kubernetes.io/instance: t'

function indent(text: string, n: number): string {
  const pad = ' '.repeat(n)
  return text
    .replace(/\n$/, '')
    .split('\n')
    .map((l) => (l === '' ? l : pad + l))
    .join('\n')
}

/** The value of an inline expression, as best we can: `.Values.x.y [| quote] [| default z]`. */
function inlineValue(expr: string): string {
  const m = /^\.Values\.([\w.]+)\s*(\|\s*(quote|default\s+\S+)\s*)?$/.exec(expr)
  if (m) {
    const v = get(values, m[1])
    if (v !== undefined && v !== null && typeof v !== 'object') {
      return m[3] === 'quote' ? JSON.stringify(String(v)) : String(v)
    }
  }
  return 'x'
}

/**
 * A best-effort render with the default values: control-only lines are dropped (so
 * both branches of an if stay), `toYaml .Values.path | nindent N` and
 * `include "…labels" . | nindent N` are expanded, every other inline action becomes a
 * placeholder. Good enough to parse the result as YAML and look at its structure.
 */
function roughRender(src: string): string {
  const out: string[] = []
  for (const line of src.split('\n')) {
    const whole = /^\s*\{\{-?\s*([\s\S]*?)\s*-?\}\}\s*$/.exec(line)
    if (whole && !line.replace(ACTION, '').trim()) {
      const body = whole[1]
      const toYaml = /^toYaml\s+\.Values\.([\w.]+)\s*\|\s*nindent\s+(\d+)$/.exec(body)
      if (toYaml) {
        const v = get(values, toYaml[1])
        if (v !== undefined && v !== null) out.push(indent(stringify(v), Number(toYaml[2])))
        continue
      }
      const labels = /^include\s+"bff-gateway\.(selectorLabels|labels)"\s+\.\s*\|\s*nindent\s+(\d+)$/.exec(body)
      if (labels) {
        out.push(indent(LABELS, Number(labels[2])))
        continue
      }
      // if/else/end/with/range/define, variable assignments, includes without output
      // we can know, `toYaml .` inside a with: nothing we can render.
      continue
    }
    out.push(line.replace(ACTION, (_m, _a, body: string) => inlineValue(body.trim())))
  }
  return out.join('\n')
}

function renderedDocs(file: string): Obj[] {
  const docs = parseAllDocuments(roughRender(readFileSync(join(templates, file), 'utf8')))
  return docs.map((d) => {
    if (d.errors.length > 0) throw new Error(`${file}: ${d.errors.map((e) => e.message).join('; ')}`)
    return d.toJSON() as Obj
  }).filter((d) => d !== null)
}

const TEMPLATES = [
  '_helpers.tpl',
  'NOTES.txt',
  'deployment.yaml',
  'service.yaml',
  'configmap.yaml',
  'ingress.yaml',
  'hpa.yaml',
  'pdb.yaml',
  'serviceaccount.yaml',
]
const MANIFESTS: Record<string, { apiVersion: string; kind: string }> = {
  'deployment.yaml': { apiVersion: 'apps/v1', kind: 'Deployment' },
  'service.yaml': { apiVersion: 'v1', kind: 'Service' },
  'configmap.yaml': { apiVersion: 'v1', kind: 'ConfigMap' },
  'ingress.yaml': { apiVersion: 'networking.k8s.io/v1', kind: 'Ingress' },
  'hpa.yaml': { apiVersion: 'autoscaling/v2', kind: 'HorizontalPodAutoscaler' },
  'pdb.yaml': { apiVersion: 'policy/v1', kind: 'PodDisruptionBudget' },
  'serviceaccount.yaml': { apiVersion: 'v1', kind: 'ServiceAccount' },
}

const deploymentSrc = readFileSync(join(templates, 'deployment.yaml'), 'utf8')
const helpersSrc = readFileSync(join(templates, '_helpers.tpl'), 'utf8')

// ---------------------------------------------------------------------------------

t.test('Chart.yaml parses as YAML and declares an apiVersion v2 application chart', async (t) => {
  const c = parse(read('Chart.yaml')) as Obj
  t.equal(c.apiVersion, 'v2')
  t.equal(c.name, 'bff-gateway')
  t.equal(c.type, 'application')
  t.match(c.version, /^\d+\.\d+\.\d+/, 'version is SemVer')
  t.type(c.appVersion, 'string', 'appVersion is a quoted string')
  const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { version: string }
  t.equal(c.appVersion, pkg.version, 'appVersion follows package.json version (the image tag default)')
})

t.test('values.yaml parses as YAML and is valid against values.schema.json', async (t) => {
  t.equal(schema.$schema, 'http://json-schema.org/draft-07/schema#', 'the schema is draft-07')
  t.equal(schema.additionalProperties, false, 'unknown top-level values are rejected')
  const validate = compile()
  const ok = validate(values)
  t.ok(ok, 'values.yaml validates', { errors: validate.errors })
})

t.test('every top-level key of the schema has a default in values.yaml and back', async (t) => {
  const described = Object.keys(schema.properties as Obj).sort()
  t.same(Object.keys(values).sort(), described)
})

t.test('the schema rejects values that would be mistakes', async (t) => {
  const validate = compile()
  const cases: Array<[string, (v: Obj) => void]> = [
    ['an unknown top-level key', (v) => { v.replicas = 2 }],
    ['a replica count that is not an integer', (v) => { v.replicaCount = '2' }],
    ['an unknown key under secrets', (v) => { (v.secrets as Obj).clientSecret = 'hunter2' }],
    ['a route auth that is not user, client, user-or-client or none', (v) => {
      ((get(v, 'config.routes') as Obj[])[0]).auth = 'bearer'
    }],
    ['a user route without scopes', (v) => { delete ((get(v, 'config.routes') as Obj[])[0]).scopes }],
    ['a route without an upstream', (v) => { delete ((get(v, 'config.routes') as Obj[])[0]).upstream }],
    ['a route prefix that does not start with /', (v) => { ((get(v, 'config.routes') as Obj[])[0]).prefix = 'api' }],
    ['a token cache url that is not memory, redis or ${VAR}', (v) => { (get(v, 'config.tokenCache') as Obj).url = 'mongodb://x' }],
    ['an oidc identity without issuer', (v) => { delete (get(v, 'config.identity') as Obj).issuer }],
    ['a listen port that is not a port', (v) => { (get(v, 'config.listen') as Obj).port = 70000 }],
    ['a duration that is not a duration', (v) => { (get(v, 'config.session') as Obj).idleTimeout = '30 minutes' }],
    ['an image digest that is not sha256', (v) => { (v.image as Obj).digest = 'latest' }],
  ]
  for (const [name, mutate] of cases) {
    const v = clone(values)
    mutate(v)
    t.notOk(validate(v), `rejects ${name}`)
  }
  const redis = clone(values)
  redis.replicaCount = 3
  ;(get(redis, 'config.tokenCache') as Obj).url = '${REDIS_URL}'
  ;(get(redis, 'secrets.keys') as Obj).redisUrl = 'REDIS_URL'
  ;(get(redis, 'config.session') as Obj).secret = ['${SESSION_SECRET}', '${SESSION_SECRET_PREVIOUS}']
  ;(redis.secrets as Obj).extraKeys = { SESSION_SECRET_PREVIOUS: 'SESSION_SECRET_PREVIOUS' }
  t.ok(validate(redis), 'accepts three replicas on Redis with a rotated session key list', { errors: validate.errors })
})

t.test('values.yaml config has the shape of a gateway routes.yaml', async (t) => {
  for (const key of ['listen', 'publicUrl', 'trustProxy', 'identity', 'session', 'tokenCache', 'routes']) {
    t.ok(key in config, `config.${key} is present`)
  }
  t.match(config.listen, { host: String, port: Number })
  t.match(config.publicUrl, /^https:\/\//, 'publicUrl is https (a __Host- cookie needs it)')
  t.type(config.trustProxy, 'boolean')
  t.match(config.identity, { provider: /^(oidc|entra)$/, clientId: String })
  t.match(config.session, { secret: String })
  t.match(config.tokenCache, { url: String })
  const routes = config.routes as Obj[]
  t.ok(Array.isArray(routes) && routes.length > 0, 'there are routes')
  for (const r of routes) {
    t.type(r.prefix, 'string', `route ${String(r.prefix)} has a prefix`)
    t.type(r.upstream, 'string', `route ${String(r.prefix)} has an upstream`)
    t.match(r.auth, /^(user|client|user-or-client|none)$/, `route ${String(r.prefix)} has an auth mode`)
    if (r.auth !== 'none') {
      t.ok(Array.isArray(r.scopes) && r.scopes.length > 0, `route ${String(r.prefix)} has scopes`)
    } else if (r.scopes !== undefined) {
      t.ok(Array.isArray(r.scopes), `route ${String(r.prefix)} scopes is a list`)
    }
  }
})

t.test('values.yaml holds no secret, only ${VAR} references to the environment', async (t) => {
  t.equal(get(config, 'identity.clientSecret'), '${OIDC_CLIENT_SECRET}')
  t.equal(get(config, 'session.secret'), '${SESSION_SECRET}')
  t.equal(get(config, 'tokenCache.encryptionKey'), '${TOKEN_CACHE_KEY}')
  t.same(get(values, 'secrets.keys'), {
    clientSecret: 'OIDC_CLIENT_SECRET',
    sessionSecret: 'SESSION_SECRET',
    tokenCacheKey: 'TOKEN_CACHE_KEY',
    redisUrl: '',
  })
})

t.test('every environment variable the config refers to is set by the Deployment', async (t) => {
  const referenced = new Set<string>()
  for (const m of stringify(config).matchAll(/\$\{([A-Za-z_][A-Za-z0-9_]*)/g)) referenced.add(m[1])
  t.ok(referenced.size >= 3, 'the config refers to the secrets by name')
  for (const name of referenced) {
    t.match(deploymentSrc, new RegExp(`- name: ${name}\\n\\s+valueFrom:\\n\\s+secretKeyRef:`), `${name} comes from a secretKeyRef`)
  }
  t.match(deploymentSrc, /- name: REDIS_URL\n\s+valueFrom:\n\s+secretKeyRef:/, 'REDIS_URL can come from a secretKeyRef')
  t.match(deploymentSrc, /range \$name, \$key := \.Values\.secrets\.extraKeys/, 'extra keys (rotation) come from the Secret too')
})

t.test('every chart template file exists', async (t) => {
  for (const f of TEMPLATES) t.ok(existsSync(join(templates, f)), `templates/${f} exists`)
  t.ok(existsSync(join(chart, '.helmignore')), '.helmignore exists')
  const unexpected = readdirSync(templates).filter((f) => !TEMPLATES.includes(f))
  t.same(unexpected, [], 'no template is left untested')
})

t.test('each template balances its if/with/range/define blocks with end', async (t) => {
  for (const f of readdirSync(templates)) {
    const src = readFileSync(join(templates, f), 'utf8')
    t.same(blockProblems(src), [], `${f} is balanced`)
    const opens = actions(src).filter((a) => /^(if|with|range|define|block)\b/.test(a)).length
    const ends = actions(src).filter((a) => /^end\b/.test(a)).length
    t.equal(opens, ends, `${f}: ${opens} openings, ${ends} ends`)
  }
})

t.test('each manifest template renders, roughly, to YAML of the right kind', async (t) => {
  for (const [f, want] of Object.entries(MANIFESTS)) {
    const docs = renderedDocs(f)
    t.equal(docs.length, 1, `${f} renders one document`)
    t.match(docs[0], { apiVersion: want.apiVersion, kind: want.kind, metadata: { name: String } }, f)
  }
})

t.test('the Deployment probes /healthz for liveness and /readyz for readiness', async (t) => {
  const [dep] = renderedDocs('deployment.yaml')
  const c = (get(dep, 'spec.template.spec.containers') as Obj[])[0]
  t.equal(get(c, 'livenessProbe.httpGet.path'), '/healthz')
  t.equal(get(c, 'readinessProbe.httpGet.path'), '/readyz')
  t.equal(get(c, 'startupProbe.httpGet.path'), '/healthz')
  for (const p of ['livenessProbe', 'readinessProbe', 'startupProbe']) {
    t.equal(get(c, `${p}.httpGet.port`), 'http', `${p} uses the named port`)
    t.type(get(c, `${p}.periodSeconds`), 'number', `${p} timings come from values.probes`)
  }
  t.match(get(c, 'ports.0'), { name: 'http', protocol: 'TCP' })
  t.match(get(c, 'ports.1'), { name: 'metrics', protocol: 'TCP' }, 'config.metrics.port gets its own named port')
  t.match(readFileSync(join(templates, 'service.yaml'), 'utf8'), /- name: metrics\n\s+port: \{\{ \. \}\}\n\s+targetPort: metrics/, 'and a Service port')
  t.match(get(c, 'resources'), { requests: { cpu: String, memory: String }, limits: { memory: String } }, 'resources are set')
})

t.test('the Deployment runs with the restricted securityContext', async (t) => {
  const [dep] = renderedDocs('deployment.yaml')
  const pod = get(dep, 'spec.template.spec') as Obj
  t.match(pod.securityContext, { runAsNonRoot: true, seccompProfile: { type: 'RuntimeDefault' } }, 'pod securityContext')
  const c = (pod.containers as Obj[])[0]
  t.match(c.securityContext, {
    runAsNonRoot: true,
    allowPrivilegeEscalation: false,
    privileged: false,
    readOnlyRootFilesystem: true,
    capabilities: { drop: ['ALL'] },
    seccompProfile: { type: 'RuntimeDefault' },
  }, 'container securityContext')
  for (const field of ['runAsNonRoot: true', 'readOnlyRootFilesystem: true', 'allowPrivilegeEscalation: false', 'type: RuntimeDefault', '- ALL']) {
    t.ok(deploymentSrc.includes(field), `the template itself says ${field} (values cannot weaken it)`)
  }
  t.equal(get(values, 'podSecurityContext.runAsUser'), 10001, 'the uid matches the image USER')
  const mounts = c.volumeMounts as Obj[]
  t.match(mounts, [{ name: 'config', mountPath: '/config', readOnly: true }, { name: 'tmp', mountPath: '/tmp' }], 'config and /tmp are mounted')
  t.match(pod.volumes, [{ name: 'config', configMap: { items: [{ key: 'routes.yaml', path: 'routes.yaml' }] } }, { name: 'tmp', emptyDir: {} }])
  t.equal(pod.terminationGracePeriodSeconds, values.terminationGracePeriodSeconds)
  t.equal(pod.automountServiceAccountToken, false, 'no service account token by default')
})

t.test('the Deployment rolls its pods when the ConfigMap changes', async (t) => {
  t.match(deploymentSrc, /checksum\/config: \{\{ include \(print \$\.Template\.BasePath "\/configmap\.yaml"\) \. \| sha256sum \}\}/)
  const [dep] = renderedDocs('deployment.yaml')
  t.ok(get(dep, 'spec.template.metadata.annotations') && 'checksum/config' in (get(dep, 'spec.template.metadata.annotations') as Obj))
})

t.test('the Deployment takes the secrets from secretKeyRef and points BFF_CONFIG at the mount', async (t) => {
  const [dep] = renderedDocs('deployment.yaml')
  const env = get(dep, 'spec.template.spec.containers.0.env') as Obj[]
  t.match(env, [{ name: 'BFF_CONFIG', value: '/config/routes.yaml' }, { name: 'NODE_ENV', value: 'production' }])
  for (const name of ['OIDC_CLIENT_SECRET', 'SESSION_SECRET', 'TOKEN_CACHE_KEY', 'REDIS_URL']) {
    const e = env.find((x) => x.name === name)
    t.ok(e, `${name} is in env`)
    t.match(e, { valueFrom: { secretKeyRef: { name: String, key: String } } }, `${name} comes from a secretKeyRef`)
  }
  t.match(deploymentSrc, /\$secretName := include "bff-gateway\.secretName"/)
  t.match(helpersSrc, /define "bff-gateway\.secretName"[\s\S]*\.Values\.secrets\.existingSecret/)
})

t.test('the ConfigMap holds routes.yaml rendered from values.config', async (t) => {
  const [cm] = renderedDocs('configmap.yaml')
  const routes = (cm.data as Obj)['routes.yaml']
  t.type(routes, 'string')
  t.same(parse(String(routes)), config, 'routes.yaml round-trips values.config')
})

t.test('the chart refuses several replicas with an in-memory token cache', async (t) => {
  t.match(deploymentSrc, /^\{\{- include "bff-gateway\.validate" \. \}\}/, 'the Deployment runs the validation first')
  const validate = /\{\{- define "bff-gateway\.validate" -\}\}([\s\S]*?)\n\{\{- end \}\}\s*$/.exec(helpersSrc)?.[1] ?? ''
  t.ok(validate, 'bff-gateway.validate is defined')
  t.match(validate, /dig "tokenCache" "url"/, 'it reads config.tokenCache.url')
  t.match(validate, /hasPrefix "memory:"/, 'it recognises memory://')
  t.match(validate, /\.Values\.replicaCount/, 'it looks at replicaCount')
  t.match(validate, /\.Values\.autoscaling\.enabled[\s\S]*\.Values\.autoscaling\.maxReplicas/, 'it looks at autoscaling.maxReplicas')
  t.match(validate, /if and \$memory \(gt \$maxReplicas 1\)\s*\}\}\s*\{\{- fail /, 'it fails when both hold')
  t.match(validate, /fail \(printf "bff-gateway: %d replicas cannot share an in-memory token cache/, 'with a clear message')
  t.match(validate, /Redis/, 'that says what to do')
  t.match(validate, /terminationGracePeriodSeconds[\s\S]*shutdownGracePeriod/, 'it also checks the grace periods')
  t.equal(values.replicaCount, 1, 'the defaults (memory://) run one replica')
  t.equal(get(values, 'autoscaling.enabled'), false, 'and do not autoscale')
  t.equal(get(config, 'tokenCache.url'), 'memory://')
})

t.test('terminationGracePeriodSeconds exceeds the gateway shutdown grace period', async (t) => {
  const grace = String(config.shutdownGracePeriod ?? '')
  const m = /^(\d+)(ms|s|m)$/.exec(grace)
  t.ok(m, `shutdownGracePeriod ${grace} is a duration`)
  if (!m) return
  const seconds = m[2] === 'ms' ? Number(m[1]) / 1000 : m[2] === 'm' ? Number(m[1]) * 60 : Number(m[1])
  t.ok(Number(values.terminationGracePeriodSeconds) > seconds)
})

t.test('the ServiceAccount takes annotations and the Azure workload identity label', async (t) => {
  const src = readFileSync(join(templates, 'serviceaccount.yaml'), 'utf8')
  t.match(src, /\.Values\.serviceAccount\.annotations/)
  t.match(src, /azure\.workload\.identity\/use: "true"/)
  t.match(src, /azure\.workload\.identity\/client-id/)
  t.match(deploymentSrc, /if \.Values\.workloadIdentity\.azure\.enabled \}\}\n\s+azure\.workload\.identity\/use: "true"/, 'pods get the label the webhook selects on')
})

t.test('the HorizontalPodAutoscaler and PodDisruptionBudget target the Deployment', async (t) => {
  const [hpa] = renderedDocs('hpa.yaml')
  t.match(hpa, { spec: { scaleTargetRef: { apiVersion: 'apps/v1', kind: 'Deployment' }, minReplicas: 2, maxReplicas: 6 } })
  t.match(readFileSync(join(templates, 'hpa.yaml'), 'utf8'), /^\{\{- if \.Values\.autoscaling\.enabled \}\}/)
  t.match(deploymentSrc, /if not \.Values\.autoscaling\.enabled \}\}\n\s+replicas:/, 'the Deployment leaves replicas to the HPA')
  const [pdb] = renderedDocs('pdb.yaml')
  t.match(pdb, { spec: { selector: { matchLabels: { 'app.kubernetes.io/name': 'bff-gateway' } } } })
})

// bff-gateway check also fetches the provider's discovery document, which a test
// cannot reach; parseRoutesFile is its offline part (YAML, ${VAR}, schema, cross-field).
const load = join(root, 'dist/src/config/load.js')
const notBuilt = existsSync(load) ? false : 'dist/src/config/load.js is not built (npm run build)'

t.test('the values config passes the gateway config validation once built', { skip: notBuilt }, async (t) => {
  const { parseRoutesFile } = (await import(pathToFileURL(load).href)) as {
    parseRoutesFile: (text: string, file: string, env: NodeJS.ProcessEnv) =>
      { ok: true; warnings: unknown[] } | { ok: false; problems: unknown[] }
  }
  const key = () => randomBytes(32).toString('base64')
  const env = { OIDC_CLIENT_SECRET: 'helm-test-client-secret', SESSION_SECRET: key(), TOKEN_CACHE_KEY: key() }
  const r = parseRoutesFile(stringify(config), 'routes.yaml', env)
  t.ok(r.ok, 'values.config is a valid routes.yaml', { problems: r.ok ? [] : r.problems })

  const multi = clone(config)
  ;(multi.tokenCache as Obj).url = '${REDIS_URL}'
  ;(multi.session as Obj).secret = ['${SESSION_SECRET}', '${SESSION_SECRET_PREVIOUS}']
  ;(multi.tokenCache as Obj).encryptionKey = ['${TOKEN_CACHE_KEY}', '${TOKEN_CACHE_KEY_PREVIOUS}']
  const r2 = parseRoutesFile(stringify(multi), 'routes.yaml', {
    ...env, REDIS_URL: 'redis://127.0.0.1:6379/0', SESSION_SECRET_PREVIOUS: key(), TOKEN_CACHE_KEY_PREVIOUS: key(),
  })
  t.ok(r2.ok, 'so is the Redis variant with rotated key lists that docs/deployment.md shows', { problems: r2.ok ? [] : r2.problems })
})
