import { Counter, Histogram, Registry, collectDefaultMetrics, type Metric } from 'prom-client';

const LATENCY_BUCKETS = [0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

/** The map key of one labelled series: its label values in the metric's label order. */
function seriesKey(labelNames: readonly string[], labels: Record<string, string>): string {
  return labelNames.map((n) => labels[n]).join('\0');
}

/** One labelled series of a {@link TalliedHistogram}. */
export class HistogramSeries {
  /** Observations per bucket (not cumulative); the last slot counts those above every bound. */
  readonly counts: Float64Array;
  sum = 0;
  count = 0;

  constructor(
    readonly labels: Readonly<Record<string, string>>,
    private readonly bounds: readonly number[],
  ) {
    this.counts = new Float64Array(bounds.length + 1);
  }

  observe(value: number): void {
    const bounds = this.bounds;
    let i = 0;
    while (i < bounds.length && value > bounds[i]!) i++;
    this.counts[i]!++;
    this.sum += value;
    this.count++;
  }
}

interface ValuePair {
  labels: Record<string, string | number>;
  sharedLabels?: Record<string, string>;
  value: number;
  metricName: string;
}

/**
 * A Prometheus histogram whose series are looked up once (by the caller, at startup or on
 * first use) and then observed with a bucket scan and three additions. prom-client's own
 * Histogram validates and hashes the labels on every observation, which costs more than
 * the rest of a request's bookkeeping; this one exposes the same text through the same
 * registry (`getForPromString`/`get` are what the Registry reads).
 */
export class TalliedHistogram {
  readonly type = 'histogram';
  readonly aggregator = 'sum';
  readonly #series = new Map<string, HistogramSeries>();

  constructor(
    readonly name: string,
    readonly help: string,
    readonly labelNames: readonly string[],
    readonly buckets: readonly number[],
    registry: Registry,
  ) {
    registry.registerMetric(this as unknown as Metric);
  }

  /** The series for these labels (every label name, in any order), created on first use. */
  series(labels: Record<string, string>): HistogramSeries {
    const key = seriesKey(this.labelNames, labels);
    let series = this.#series.get(key);
    if (series === undefined) {
      const own: Record<string, string> = {};
      for (const n of this.labelNames) own[n] = labels[n]!;
      series = new HistogramSeries(own, this.buckets);
      this.#series.set(key, series);
    }
    return series;
  }

  getForPromString(): Promise<{ name: string; help: string; type: string; aggregator: string; values: ValuePair[] }> {
    const values: ValuePair[] = [];
    for (const s of this.#series.values()) {
      let cumulative = 0;
      this.buckets.forEach((le, i) => {
        cumulative += s.counts[i]!;
        values.push({ labels: { le }, sharedLabels: s.labels, value: cumulative, metricName: `${this.name}_bucket` });
      });
      values.push(
        { labels: { le: '+Inf' }, sharedLabels: s.labels, value: s.count, metricName: `${this.name}_bucket` },
        { labels: {}, sharedLabels: s.labels, value: s.sum, metricName: `${this.name}_sum` },
        { labels: {}, sharedLabels: s.labels, value: s.count, metricName: `${this.name}_count` },
      );
    }
    return Promise.resolve({ name: this.name, help: this.help, type: this.type, aggregator: this.aggregator, values });
  }

  /** The JSON form (Registry.getMetricsAsJSON): each value's labels include the series' own. */
  async get(): Promise<{ name: string; help: string; type: string; aggregator: string; values: ValuePair[] }> {
    const data = await this.getForPromString();
    data.values = data.values.map(({ labels, sharedLabels, value, metricName }) => ({ labels: { ...sharedLabels, ...labels }, value, metricName }));
    return data;
  }

  reset(): void {
    for (const s of this.#series.values()) {
      s.counts.fill(0);
      s.sum = 0;
      s.count = 0;
    }
  }
}

/**
 * A Prometheus counter fed from plain per-series tallies: `tally(labels)` returns an object
 * whose `n` the hot path increments; the counter takes the increments in when scraped.
 */
class TalliedCounter {
  readonly counter: Counter<string>;
  readonly #labelNames: readonly string[];
  readonly #tallies = new Map<string, { labels: Record<string, string>; n: number; taken: number }>();

  constructor(config: { name: string; help: string; labelNames: readonly string[]; registry: Registry }) {
    const tallies = this.#tallies;
    this.#labelNames = config.labelNames;
    this.counter = new Counter({
      name: config.name,
      help: config.help,
      labelNames: config.labelNames,
      registers: [config.registry],
      collect() {
        for (const t of tallies.values()) {
          if (t.n === t.taken) continue;
          this.inc(t.labels, t.n - t.taken);
          t.taken = t.n;
        }
      },
    });
  }

  tally(labels: Record<string, string>): { n: number } {
    const key = seriesKey(this.#labelNames, labels);
    let t = this.#tallies.get(key);
    if (t === undefined) {
      t = { labels, n: 0, taken: 0 };
      this.#tallies.set(key, t);
      // Zero from the start, as prom-client shows a series once it has been touched.
      this.counter.inc(labels, 0);
    }
    return t;
  }
}

/** What one route records per request, looked up once per route and status rather than per call. */
export class RouteMetrics {
  readonly #byStatus = new Map<number, { count: { n: number }; seconds: HistogramSeries }>();
  readonly #tokens = new Map<string, { n: number }>();
  #upstream: HistogramSeries | undefined;

  constructor(
    private readonly metrics: GatewayMetrics,
    readonly name: string,
  ) {}

  /** One answered request: status and total time. */
  request(status: number, seconds: number): void {
    let s = this.#byStatus.get(status);
    if (s === undefined) {
      const labels = { route: this.name, status: String(status) };
      s = { count: this.metrics.requestTallies.tally(labels), seconds: this.metrics.duration.series(labels) };
      this.#byStatus.set(status, s);
    }
    s.count.n++;
    s.seconds.observe(seconds);
  }

  /** One route token acquisition, by how it ended (cache, refresh, consent_required, …). */
  tokenOutcome(outcome: string): void {
    let t = this.#tokens.get(outcome);
    if (t === undefined) {
      t = this.metrics.tokenTallies.tally({ route: this.name, outcome });
      this.#tokens.set(outcome, t);
    }
    t.n++;
  }

  /** Time to the upstream's response headers. */
  upstreamSeconds(seconds: number): void {
    (this.#upstream ??= this.metrics.upstream.series({ route: this.name })).observe(seconds);
  }
}

/** Prometheus metrics of one gateway. Labels are route names and outcomes: bounded, never paths or users. */
export class GatewayMetrics {
  readonly registry = new Registry();
  /** bff_requests_total. */
  readonly requestTallies = new TalliedCounter({ name: 'bff_requests_total', help: 'Requests by route and status', labelNames: ['route', 'status'], registry: this.registry });
  readonly duration = new TalliedHistogram('bff_request_duration_seconds', 'Request latency by route', ['route', 'status'], LATENCY_BUCKETS, this.registry);
  readonly upstream = new TalliedHistogram('bff_upstream_duration_seconds', 'Time to the upstream response headers, by route', ['route'], LATENCY_BUCKETS, this.registry);
  /** bff_token_acquisitions_total. */
  readonly tokenTallies = new TalliedCounter({
    name: 'bff_token_acquisitions_total',
    help: 'Route token acquisitions by outcome (cache, refresh, client_credentials, consent_required, provider_unavailable, …)',
    labelNames: ['route', 'outcome'],
    registry: this.registry,
  });
  readonly provider = new Histogram({
    name: 'bff_provider_call_duration_seconds',
    help: 'Calls to the identity provider by kind and result',
    labelNames: ['kind', 'result'] as const,
    buckets: [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
    registers: [this.registry],
  });
  readonly sessions = new Counter({ name: 'bff_sessions_total', help: 'Sessions started and ended, by event', labelNames: ['event'] as const, registers: [this.registry] });

  readonly #routes = new Map<string, RouteMetrics>();

  constructor() {
    collectDefaultMetrics({ register: this.registry });
  }

  /** The recorder of one route (a proxy route's name, or `auth` / `gateway` for the gateway's own endpoints). */
  route(name: string): RouteMetrics {
    let route = this.#routes.get(name);
    if (route === undefined) {
      route = new RouteMetrics(this, name);
      this.#routes.set(name, route);
    }
    return route;
  }
}
