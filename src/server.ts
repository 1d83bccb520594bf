import { createHash } from 'node:crypto';
import type { FastifyInstance } from 'fastify';
import type { DestinationStream, Logger } from 'pino';
import { buildApp } from './app.js';
import type { GatewayConfig } from './config/resolve.js';
import { formatProblem, type ConfigProblem, type Locate } from './config/load.js';
import { OidcBackend, type MetadataProblem } from './identity/oidc.js';
import type { IdentityBackend, PartitionStore } from './identity/types.js';
import type { GatewayDeps } from './http/gateway-deps.js';
import { GatewayMetrics } from './http/metrics.js';
import { createLogger } from './logger.js';
import { LoginStateStore } from './session/login-state.js';
import { SessionStore } from './session/sessions.js';
import { TokenService } from './tokens/acquire.js';
import { TokenCache } from './tokens/cache.js';
import { LocalLock, RedisLock } from './tokens/lock.js';
import { LifetimeModel } from './tokens/lifetimes.js';
import { redisInvalidationBus } from './tokens/invalidation.js';
import { Sealer } from './tokens/sealed.js';
import { openStore, type Store } from './tokens/store.js';
import { keepTickObjectShape } from './util/tick-shape.js';

export interface GatewayOptions {
  /** Where logs go (tests read them back); default stdout. */
  logStream?: DestinationStream;
  /** Identity back end to use instead of the one the config names (Entra wiring). */
  identity?: IdentityBackend;
}

export interface Gateway {
  app: FastifyInstance;
  deps: GatewayDeps;
  logger: Logger;
  /** Resolves when provider metadata is loaded (retried with backoff until then). */
  discovered: Promise<void>;
  close(): Promise<void>;
}

/**
 * The identity back end the config names. Entra's MSAL cache is partitioned per account into
 * the token store, sealed like every other entry; `check` passes no store (nothing is cached).
 */
export async function createIdentity(config: GatewayConfig, store?: Store, sealer?: Sealer): Promise<IdentityBackend> {
  if (config.identity.provider === 'entra') {
    const { EntraBackend } = await import('./identity/entra.js');
    const partitions: PartitionStore | undefined =
      store && sealer
        ? {
            async load(key) {
              return sealer.open(await store.get<string>(MSAL + key), MSAL + key);
            },
            async save(key, serialized, ttlMs) {
              await store.set(MSAL + key, sealer.seal(serialized, MSAL + key), ttlMs);
            },
            async delete(key) {
              await store.delete(MSAL + key);
            },
          }
        : undefined;
    // A partition lives as long as a session may (each write renews it).
    return new EntraBackend(config.identity, partitions, { partitionTtlMs: config.session.absoluteMs });
  }
  return new OidcBackend(config.identity);
}

const MSAL = 'msal:';

/** Wires config, store, identity, tokens, sessions and the app. Does not listen. */
export async function createGateway(config: GatewayConfig, opts: GatewayOptions = {}): Promise<Gateway> {
  keepTickObjectShape();
  const logger = createLogger(config.logging, opts.logStream);
  const store = openStore(config.tokenCache.url);
  if (!(await store.connect(3000))) logger.warn('token store not reachable yet: requests that need it answer 503 until it is');
  const sealer = new Sealer(config.tokenCache.keys, 'token-cache');
  const identity = opts.identity ?? (await createIdentity(config, store, sealer));
  const metrics = new GatewayMetrics();
  // The lease outlives the slowest provider call the lock can cover.
  const lock = store.redis ? new RedisLock(store.redis, config.identity.timeoutMs * 2 + 5000, config.identity.timeoutMs * 3 + 5000) : new LocalLock();
  const lifetimes = new LifetimeModel(config, (message) => logger.warn(message));
  const bus = store.redis ? await redisInvalidationBus(store.redis).catch(() => undefined) : undefined;
  const tokens = new TokenService(new TokenCache(store, sealer, bus), identity, lock, lifetimes, {
    onProviderCall: (kind, seconds, ok) => metrics.provider.observe({ kind, result: ok ? 'ok' : 'error' }, seconds),
    onWriteConflict: (account) => logger.warn({ account }, 'token cache entry changed during a refresh; kept the other writer\'s entry'),
  });
  const sessions = new SessionStore(store, sealer, { idleMs: config.session.idleMs, absoluteMs: config.session.absoluteMs }, bus);
  const loginStates = new LoginStateStore(store, sealer);
  const deps: GatewayDeps = {
    config,
    identity,
    store,
    tokens,
    sessions,
    loginStates,
    metrics,
    async seenLogoutToken(jti) {
      const key = 'jti:' + createHash('sha256').update(jti).digest('base64url');
      if (await store.get(key)) return true;
      await store.set(key, 1, 15 * 60_000);
      return false;
    },
  };
  const app = await buildApp(deps, logger);

  let stopped = false;
  const discovered = (async () => {
    for (let attempt = 0, delay = 250; !stopped; attempt++, delay = Math.min(delay * 2, 30_000)) {
      try {
        await identity.init();
        if (attempt > 0) logger.info('provider metadata loaded');
        return;
      } catch (err) {
        logger.warn({ attempt, retryInMs: delay, reason: (err as Error).message }, 'provider discovery failed; retrying');
        await new Promise((r) => setTimeout(r, delay).unref());
      }
    }
  })();

  return {
    app,
    deps,
    logger,
    discovered,
    async close() {
      stopped = true;
      await app.close();
      await identity.close?.();
      await bus?.close();
      await store.close();
    },
  };
}

/** Metadata checks as config problems, located at the lines they concern. */
export function metadataProblems(identity: IdentityBackend, config: GatewayConfig, file: string, locate: Locate): ConfigProblem[] {
  if (!(identity instanceof OidcBackend)) return [];
  return identity.checkMetadata(config.routes.map((r) => ({ index: r.index, scopes: r.scopes }))).map((p: MetadataProblem) => ({ file, ...locate(p.path), message: p.message, severity: p.severity }));
}

/** Listens, handles signals and drains in-flight requests within the grace period. */
export async function runServer(config: GatewayConfig, file: string, locate: Locate, warnings: ConfigProblem[]): Promise<Gateway> {
  const gateway = await createGateway(config);
  const { app, logger } = gateway;
  for (const w of warnings) logger.warn(formatProblem(w));
  // Give discovery a moment so metadata problems are reported before we listen.
  // Not unref'd: until the server listens, this timer is what keeps the process alive.
  let wait: NodeJS.Timeout | undefined;
  await Promise.race([gateway.discovered, new Promise((r) => (wait = setTimeout(r, config.identity.timeoutMs)))]);
  clearTimeout(wait);
  const problems = metadataProblems(gateway.deps.identity, config, file, locate);
  for (const p of problems) (p.severity === 'error' ? logger.error : logger.warn).call(logger, formatProblem(p));
  if (problems.some((p) => p.severity === 'error')) {
    // As `check` prints them: the operator reads stderr of a process that never listened.
    for (const p of problems) if (p.severity === 'error') console.error(formatProblem(p));
    await gateway.close();
    throw new Error('the provider cannot work with this configuration');
  }
  if (!gateway.deps.identity.ready()) logger.warn('provider not reachable yet: /readyz fails and sign-in answers 503 until it is');

  let metricsApp: FastifyInstance | undefined;
  if (config.metricsPort !== undefined) {
    const { default: Fastify } = await import('fastify');
    const separate = Fastify();
    metricsApp = separate;
    separate.get('/metrics', async (_req, reply) => reply.header('content-type', gateway.deps.metrics.registry.contentType).header('cache-control', 'no-store').send(await gateway.deps.metrics.registry.metrics()));
    // Hooks can only be added before the app listens (Fastify refuses them afterwards).
    app.addHook('onClose', async () => separate.close());
  }
  await app.listen({ host: config.listen.host, port: config.listen.port });
  if (metricsApp) await metricsApp.listen({ host: config.listen.host, port: config.metricsPort });

  let closing = false;
  const shutdown = (signal: string) => {
    // Listeners stay installed (process.on, not once): a repeated SIGTERM must not fall
    // back to Node's default action and kill the process in the middle of the drain.
    if (closing) {
      if (signal === 'SIGINT') {
        // A second Ctrl-C: the developer does not want to wait for the grace period.
        logger.warn('second SIGINT: stopping at once');
        process.exit(130);
      }
      logger.info({ signal }, 'already shutting down');
      return;
    }
    closing = true;
    logger.info({ signal, graceMs: config.shutdownGraceMs }, 'shutting down');
    const force = setTimeout(() => {
      logger.warn('grace period over: closing remaining connections');
      app.server.closeAllConnections();
    }, config.shutdownGraceMs);
    force.unref();
    // server.close() closes the connections idle at that moment only; a keep-alive
    // connection whose request finishes during the drain would stay open until the
    // client lets go of it or the keep-alive timeout (72 s in Fastify) ends it, holding
    // the process meanwhile. Close such connections as soon as they turn idle.
    const idle = setInterval(() => app.server.closeIdleConnections(), 100);
    idle.unref();
    gateway.close().then(
      () => {
        clearTimeout(force);
        clearInterval(idle);
        logger.info('stopped');
        logger.flush?.();
        process.exit(0);
      },
      (err) => {
        logger.error({ err }, 'shutdown failed');
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', () => shutdown('SIGTERM'));
  process.on('SIGINT', () => shutdown('SIGINT'));
  return gateway;
}
