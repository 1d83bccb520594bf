import { Counter, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

/** Prometheus metrics of one gateway. Labels are route names and outcomes: bounded, never paths or users. */
export class GatewayMetrics {
  readonly registry = new Registry();
  readonly requests = new Counter({ name: 'bff_requests_total', help: 'Requests by route and status', labelNames: ['route', 'status'] as const, registers: [this.registry] });
  readonly duration = new Histogram({
    name: 'bff_request_duration_seconds',
    help: 'Request latency by route',
    labelNames: ['route', 'status'] as const,
    buckets: [0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
    registers: [this.registry],
  });
  readonly upstream = new Histogram({
    name: 'bff_upstream_duration_seconds',
    help: 'Time to the upstream response headers, by route',
    labelNames: ['route'] as const,
    buckets: [0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
    registers: [this.registry],
  });
  readonly tokens = new Counter({
    name: 'bff_token_acquisitions_total',
    help: 'Route token acquisitions by outcome (cache, refresh, client_credentials, consent_required, provider_unavailable, …)',
    labelNames: ['route', 'outcome'] as const,
    registers: [this.registry],
  });
  readonly provider = new Histogram({
    name: 'bff_provider_call_duration_seconds',
    help: 'Calls to the identity provider by kind and result',
    labelNames: ['kind', 'result'] as const,
    buckets: [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
    registers: [this.registry],
  });
  readonly sessions = new Counter({ name: 'bff_sessions_total', help: 'Sessions started and ended, by event', labelNames: ['event'] as const, registers: [this.registry] });

  readonly #requestChildren = new Map<string, { count: { inc(): void }; seconds: { observe(v: number): void } }>();
  readonly #tokenChildren = new Map<string, { inc(): void }>();
  readonly #upstreamChildren = new Map<string, { observe(v: number): void }>();

  constructor() {
    collectDefaultMetrics({ register: this.registry });
  }

  /** Per-request counters through cached label children: no label hashing on the hot path. */
  observeRequest(route: string, status: number, seconds: number): void {
    const child = cachedChild(this.#requestChildren, `${route}\0${status}`, () => {
      const labels = { route, status: String(status) };
      return { count: this.requests.labels(labels), seconds: this.duration.labels(labels) };
    });
    child.count.inc();
    child.seconds.observe(seconds);
  }

  /** Counts one route token acquisition by how it ended. */
  tokenOutcome(route: string, outcome: string): void {
    cachedChild(this.#tokenChildren, `${route}\0${outcome}`, () => this.tokens.labels({ route, outcome })).inc();
  }

  /** Times one route's upstream answer (to its response headers). */
  upstreamSeconds(route: string, seconds: number): void {
    cachedChild(this.#upstreamChildren, route, () => this.upstream.labels({ route })).observe(seconds);
  }
}

function cachedChild<T>(children: Map<string, T>, key: string, make: () => T): T {
  let child = children.get(key);
  if (child === undefined) {
    child = make();
    children.set(key, child);
  }
  return child;
}
