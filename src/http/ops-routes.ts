import type { FastifyInstance } from 'fastify';
import type { GatewayDeps } from './gateway-deps.js';

const READY_TIMEOUT_MS = 500;

/** Liveness, readiness and metrics: cheap, unauthenticated, never proxied, logged at debug. */
export async function opsRoutes(app: FastifyInstance, deps: GatewayDeps, opts: { metrics: boolean }): Promise<void> {
  app.get('/healthz', { logLevel: 'warn' }, async (_req, reply) => reply.header('cache-control', 'no-store').send({ status: 'ok' }));
  app.get('/readyz', { logLevel: 'warn' }, async (_req, reply) => {
    const provider = deps.identity.ready();
    const store = await deps.store.ping(READY_TIMEOUT_MS);
    const ok = provider && store;
    return reply
      .code(ok ? 200 : 503)
      .header('cache-control', 'no-store')
      .send({ status: ok ? 'ready' : 'not ready', provider: provider ? 'ok' : 'metadata not loaded', tokenStore: store ? 'ok' : 'unreachable' });
  });
  if (opts.metrics) {
    app.get('/metrics', { logLevel: 'warn' }, async (_req, reply) =>
      reply.header('content-type', deps.metrics.registry.contentType).header('cache-control', 'no-store').send(await deps.metrics.registry.metrics()),
    );
  }
}
