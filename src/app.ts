import Fastify, { LogController, type FastifyBaseLogger, type FastifyInstance } from 'fastify';
import secureSession from '@fastify/secure-session';
import { hkdfSync } from 'node:crypto';
import type { Logger } from 'pino';
import { accessLogWriter } from './logger.js';
import type { GatewayDeps } from './http/gateway-deps.js';
import { authRoutes } from './http/auth-routes.js';
import { opsRoutes } from './http/ops-routes.js';
import { installProblemHandlers, sendProblem } from './http/problems.js';
import { proxyRoutes } from './http/proxy-routes.js';
import { LIMITS, requestRefusal } from './http/request-guard.js';
import { SessionCookieReader, type SessionCookieCodec } from './http/session-cookie.js';

export { LIMITS };

function sessionKeys(secrets: readonly string[]): Buffer[] {
  return secrets.map((s) => Buffer.from(hkdfSync('sha256', Buffer.from(s), Buffer.from('bff-gateway'), Buffer.from('session-cookie'), 32)));
}

/** Builds the gateway's Fastify app. It never listens: server.ts does, tests inject or listen on port 0. */
export async function buildApp(deps: GatewayDeps, logger: Logger): Promise<FastifyInstance> {
  const { config } = deps;
  const app = Fastify({
    loggerInstance: logger as FastifyBaseLogger,
    // The onResponse hook below writes the one line per request.
    logController: new LogController({ disableRequestLogging: true }),
    trustProxy: config.trustProxy,
    // Node answers 431 itself past this, before any hook or token work.
    http: { maxHeaderSize: LIMITS.maxHeaderSize },
    bodyLimit: LIMITS.bodyLimit,
    return503OnClosing: true,
    forceCloseConnections: 'idle',
    requestIdHeader: false,
    genReqId: () => crypto.randomUUID(),
    routerOptions: { maxParamLength: 1000 },
  });
  installProblemHandlers(app, requestRefusal);

  const accessLog = config.logging.accessLog ? accessLogWriter(logger) : undefined;
  /** The gateway's own endpoints, counted as two pseudo-routes. */
  const authMetrics = deps.metrics.route('auth');
  const gatewayMetrics = deps.metrics.route('gateway');
  // Callback-style hook: it runs on every request and needs no promise of its own.
  app.addHook('onResponse', (request, reply, done) => {
    const elapsed = reply.elapsedTime;
    // A proxy route names itself in its preHandler (proxy routes log at the root level).
    // Otherwise routeOptions tells (a getter that builds a new object: read it once), and
    // the route's log level applies (health probes log at warn).
    let metrics = request.bffMetrics;
    let logged = accessLog !== undefined;
    if (!metrics) {
      const { config: routeConfig, url } = request.routeOptions;
      metrics = routeConfig.bffRoute ? deps.metrics.route(routeConfig.bffRoute.name) : url?.startsWith('/auth/') ? authMetrics : gatewayMetrics;
      logged &&= (request.log as unknown as Logger).isLevelEnabled('info');
    }
    metrics.request(reply.statusCode, elapsed / 1000);
    if (logged) accessLog!(request.id, request.method, request.url, metrics.name, reply.statusCode, Math.round(elapsed));
    done();
  });

  // Proxy routes check requests first thing in their preHandler; the auth and ops endpoints
  // here, and a path no route serves in the not-found handler.
  const guard = (scope: FastifyInstance) =>
    scope.addHook('onRequest', (request, reply, done) => {
      const refusal = requestRefusal(request);
      if (refusal) sendProblem(reply, refusal);
      else done();
    });

  let codec: SessionCookieCodec | undefined;
  // The session plugin's hooks run for the auth endpoints only: proxy routes read the cookie
  // on demand (SessionCookieReader) rather than decrypt it in a hook on every API call.
  await app.register(async (scope) => {
    guard(scope);
    await scope.register(secureSession, {
      key: sessionKeys(config.session.secrets),
      cookieName: config.session.cookieName,
      expiry: Math.ceil(config.session.absoluteMs / 1000),
      cookie: { path: '/', httpOnly: true, secure: config.secure, sameSite: 'lax', maxAge: Math.ceil(config.session.absoluteMs / 1000) },
    });
    codec = {
      decode: (value) => scope.decodeSecureSession(value),
      encode: (data) => scope.encodeSecureSession(scope.createSecureSession(data)),
    };
    await authRoutes(scope, deps);
  });
  await app.register(async (scope) => {
    guard(scope);
    await opsRoutes(scope, deps, { metrics: config.metricsPort === undefined });
  });
  const sessionCookie = new SessionCookieReader(config.session.cookieName, codec!);
  app.decorate('sessionCookie', sessionCookie);
  await app.register(async (scope) => proxyRoutes(scope, deps, sessionCookie));
  return app;
}
