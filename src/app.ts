import Fastify, { LogController, type FastifyBaseLogger, type FastifyInstance } from 'fastify';
import secureSession from '@fastify/secure-session';
import { hkdfSync } from 'node:crypto';
import type { Logger } from 'pino';
import type { GatewayDeps } from './http/gateway-deps.js';
import { authRoutes } from './http/auth-routes.js';
import { opsRoutes } from './http/ops-routes.js';
import { Problems, installProblemHandlers, sendProblem } from './http/problems.js';
import { proxyRoutes } from './http/proxy-routes.js';
import { isPlainPath } from './http/request-path.js';

/** Header, URL and body limits: oversized input is refused before any token work. */
export const LIMITS = { maxHeaderSize: 16 * 1024, maxUrlLength: 8 * 1024, bodyLimit: 10 * 1024 * 1024 };

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
  installProblemHandlers(app);

  // Callback-style hooks: they run on every request, and need no promise of their own.
  app.addHook('onRequest', (request, reply, done) => {
    if (request.url.length > LIMITS.maxUrlLength) {
      sendProblem(reply, Object.assign(new Error('URI too long'), { statusCode: 414 }) as never);
      return;
    }
    // Proxied routes stream the body and never apply bodyLimit: refuse a declared oversize
    // body here, before the route's token work (a chunked body is not covered; see SECURITY.md).
    if (Number(request.headers['content-length']) > LIMITS.bodyLimit) {
      sendProblem(reply, Object.assign(new Error('Payload too large'), { statusCode: 413, code: 'FST_ERR_CTP_BODY_TOO_LARGE' }) as never);
      return;
    }
    if (!isPlainPath(request.url)) {
      sendProblem(reply, new Problems.BadPath());
      return;
    }
    done();
  });
  app.addHook('onResponse', (request, reply, done) => {
    const route = request.routeOptions.config.bffRoute?.name ?? (request.routeOptions.url?.startsWith('/auth/') ? 'auth' : 'gateway');
    deps.metrics.observeRequest(route, reply.statusCode, reply.elapsedTime / 1000);
    const q = request.url.indexOf('?');
    // One line per request; the query string is left out (it carries codes and state).
    request.log.info({ method: request.method, path: q === -1 ? request.url : request.url.slice(0, q), route, status: reply.statusCode, ms: Math.round(reply.elapsedTime) }, 'request');
    done();
  });

  await app.register(secureSession, {
    key: sessionKeys(config.session.secrets),
    cookieName: config.session.cookieName,
    expiry: Math.ceil(config.session.absoluteMs / 1000),
    cookie: { path: '/', httpOnly: true, secure: config.secure, sameSite: 'lax', maxAge: Math.ceil(config.session.absoluteMs / 1000) },
  });

  await app.register(async (scope) => authRoutes(scope, deps));
  await app.register(async (scope) => opsRoutes(scope, deps, { metrics: config.metricsPort === undefined }));
  await app.register(async (scope) => proxyRoutes(scope, deps));
  return app;
}
