import t from 'tap';
import { Counter, Histogram, Registry } from 'prom-client';
import { GatewayMetrics } from '../../src/http/metrics.js';

const NAMES = ['bff_requests_total', 'bff_request_duration_seconds', 'bff_upstream_duration_seconds', 'bff_token_acquisitions_total'];

/** prom-client's own metrics under the same names, fed the same observations: what a scrape must show. */
function reference(metrics: GatewayMetrics) {
  const registers = [new Registry()];
  const like = (name: string) => metrics.registry.getSingleMetric(name) as unknown as { help: string; labelNames: string[]; buckets?: number[] };
  const counter = (name: string) => new Counter({ name, help: like(name).help, labelNames: like(name).labelNames, registers });
  const histogram = (name: string) => new Histogram({ name, help: like(name).help, labelNames: like(name).labelNames, buckets: like(name).buckets, registers });
  return {
    registry: registers[0]!,
    requests: counter('bff_requests_total'),
    duration: histogram('bff_request_duration_seconds'),
    upstream: histogram('bff_upstream_duration_seconds'),
    tokens: counter('bff_token_acquisitions_total'),
  };
}

function record(metrics: GatewayMetrics, ref: ReturnType<typeof reference>, route: string, status: number, seconds: number, token?: string) {
  metrics.route(route).request(status, seconds);
  ref.requests.inc({ route, status: String(status) });
  ref.duration.observe({ route, status: String(status) }, seconds);
  if (token) {
    metrics.route(route).tokenOutcome(token);
    ref.tokens.inc({ route, outcome: token });
    metrics.route(route).upstreamSeconds(seconds / 2);
    ref.upstream.observe({ route }, seconds / 2);
  }
}

async function sameScrape(t: Tap.Test, metrics: GatewayMetrics, ref: ReturnType<typeof reference>, when: string) {
  for (const name of NAMES) {
    t.equal(await metrics.registry.getSingleMetricAsString(name), await ref.registry.getSingleMetricAsString(name), `${name}, ${when}`);
  }
  // The JSON form (getMetricsAsJSON) too, exemplars aside (the gateway records none).
  const plain = (m: { name: string; help: string; type: string; values: { value: number; labels: object; metricName?: string }[] } | undefined) =>
    m && { name: m.name, help: m.help, type: m.type, values: m.values.map((v) => ({ value: v.value, labels: v.labels, metricName: v.metricName })) };
  const json = await metrics.registry.getMetricsAsJSON();
  const refJson = await ref.registry.getMetricsAsJSON();
  t.same(
    NAMES.map((n) => plain(json.find((m) => m.name === n))),
    NAMES.map((n) => plain(refJson.find((m) => m.name === n))),
    `the JSON form too, ${when}`,
  );
}

t.test('route tallies scrape as the text prom-client writes for the same observations', async (t) => {
  const metrics = new GatewayMetrics();
  const ref = reference(metrics);
  t.equal(await metrics.registry.getSingleMetricAsString('bff_requests_total'), await ref.registry.getSingleMetricAsString('bff_requests_total'), 'nothing before the first request');

  // Values on a bucket bound fall in that bucket (le is "less than or equal").
  for (const [route, status, seconds, token] of [
    ['api', 200, 0.001, 'refresh'],
    ['api', 200, 0.002, 'cache'],
    ['api', 200, 0.0021, 'cache'],
    ['api', 502, 0.5, 'cache'],
    ['auth', 302, 0.004],
    ['api', 200, 12, 'cache'],
    ['orders', 403, 0],
  ] as const) {
    record(metrics, ref, route, status, seconds, token);
  }
  await sameScrape(t, metrics, ref, 'first scrape');

  // Counters take in only what happened since the last scrape.
  record(metrics, ref, 'api', 200, 0.03, 'cache');
  record(metrics, ref, 'api', 401, 0.01, 'consent_required');
  await sameScrape(t, metrics, ref, 'second scrape');
  await sameScrape(t, metrics, ref, 'a scrape with nothing new');
});

t.test('a series is listed from its first observation, not before', async (t) => {
  const metrics = new GatewayMetrics();
  metrics.route('api');
  const text = await metrics.registry.metrics();
  t.notMatch(text, /route="api"/, 'a route that has served nothing has no series');
  metrics.route('api').tokenOutcome('cache');
  t.match(await metrics.registry.metrics(), /^bff_token_acquisitions_total\{route="api",outcome="cache"\} 1$/m);
  t.notMatch(await metrics.registry.metrics(), /bff_upstream_duration_seconds_count\{route="api"\}/, 'no upstream timing yet');
});

t.test('resetting the registry starts every series from zero', async (t) => {
  const metrics = new GatewayMetrics();
  const api = metrics.route('api');
  api.request(200, 0.003);
  api.tokenOutcome('cache');
  await metrics.registry.metrics();
  metrics.registry.resetMetrics();
  api.request(200, 0.003);
  api.tokenOutcome('cache');
  const text = await metrics.registry.metrics();
  t.match(text, /^bff_requests_total\{route="api",status="200"\} 1$/m);
  t.match(text, /^bff_request_duration_seconds_count\{route="api",status="200"\} 1$/m);
  t.match(text, /^bff_token_acquisitions_total\{route="api",outcome="cache"\} 1$/m);
});
