import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import httpProxy from '@fastify/http-proxy';
import type { CompiledRoute } from '../config/resolve.js';
import type { TokenOutcome } from '../tokens/outcome.js';
import type { GatewayDeps } from './gateway-deps.js';
import { upstreamRequestHeaders } from './headers.js';
import { claimsFromChallenge } from './claims-challenge.js';
import { asProblem, loginUrlFor } from './auth-routes.js';
import { Problems, withExtras } from './problems.js';
import { isCrossSite, lookupSession } from './session-context.js';
import { requestRefusal } from './request-guard.js';
import type { SessionCookieReader } from './session-cookie.js';
import type { RouteMetrics } from './metrics.js';

declare module 'fastify' {
  interface FastifyRequest {
    /** The bearer token chosen in preHandler for this request's upstream call. */
    bffToken: string | null;
    bffUpstreamStart: number;
    /** The proxy route's metrics, set first thing in its preHandler; null on the gateway's own endpoints. */
    bffMetrics: RouteMetrics | null;
  }
  interface FastifyContextConfig {
    bffRoute?: CompiledRoute;
  }
}

/** The browser's handshake headers the upstream may see; the ws client makes its own key, version and upgrade. */
export function handshakeHeaders(headers: FastifyRequest['headers']): FastifyRequest['headers'] {
  const out: FastifyRequest['headers'] = {};
  for (const [name, value] of Object.entries(headers)) {
    if (name === 'host' || name === 'connection' || name === 'upgrade' || name.startsWith('sec-websocket-')) continue;
    out[name] = value;
  }
  return out;
}

/** Headers some upstream frameworks read as the real method (X-HTTP-Method-Override and kin). */
const METHOD_OVERRIDE_HEADERS = ['x-http-method-override', 'x-http-method', 'x-method-override'];

/** Drops the upstream's headers already copied onto the reply, before the gateway answers itself. */
function clearHeaders(reply: FastifyReply): void {
  for (const name of Object.keys(reply.getHeaders())) reply.removeHeader(name);
}

/** Upstream answers of declared length up to this are read whole before they are sent on. */
export const BUFFERED_RESPONSE_MAX = 64 * 1024;

/** Where a 401 on this route sends the SPA, computed once per route at startup. */
interface RouteLoginUrls {
  /** Sign in again (with the route's scopes when sign-in does not ask for them). */
  signIn: string;
  /** Incremental consent: always asks for the route's scopes, which the grant lacks. */
  consent: string;
}

/** Chooses the route's token; throws the problem the SPA sees when there is none. */
async function routeToken(request: FastifyRequest, route: CompiledRoute, urls: RouteLoginUrls, deps: GatewayDeps, sessionCookie: SessionCookieReader, metrics: RouteMetrics): Promise<string | null> {
  if (route.auth === 'none') return null;
  let outcome: TokenOutcome;
  if (route.auth === 'client') {
    outcome = await deps.tokens.forApp(route);
  } else {
    const found = await lookupSession(sessionCookie.sessionId(request), deps.sessions).catch((err) => {
      throw asProblem(err);
    });
    if (found.kind === 'active') {
      outcome = await deps.tokens.forUser({ key: found.record.accountKey, iss: found.record.iss, sub: found.record.sub }, route);
    } else if (route.auth === 'user-or-client') {
      outcome = await deps.tokens.forApp(route);
    } else {
      if (found.kind === 'expired' && found.accountKey) await deps.tokens.removeAccount(found.accountKey).catch(() => undefined);
      metrics.tokenOutcome('no_session');
      throw withExtras(new Problems.SessionExpired(), { loginUrl: urls.signIn });
    }
  }
  switch (outcome.kind) {
    case 'bearer':
      metrics.tokenOutcome(outcome.source);
      return outcome.token;
    case 'none':
      metrics.tokenOutcome('none');
      throw withExtras(new Problems.SessionExpired(), { loginUrl: urls.signIn });
    case 'error':
      metrics.tokenOutcome(outcome.code);
      switch (outcome.code) {
        case 'consent_required':
          throw withExtras(new Problems.ConsentRequired(), { loginUrl: urls.consent, scopes: route.scopes });
        case 'provider_unavailable':
          throw withExtras(new Problems.ProviderUnavailable(), { retryAfterSec: outcome.retryAfterSec });
        case 'token_store_unavailable':
          throw withExtras(new Problems.TokenStoreUnavailable(), { retryAfterSec: outcome.retryAfterSec });
        case 'provider_error':
          throw new Problems.ProviderError();
      }
  }
}

export async function proxyRoutes(app: FastifyInstance, deps: GatewayDeps, sessionCookie: SessionCookieReader): Promise<void> {
  const { config } = deps;
  const publicOrigin = new URL(config.publicUrl).origin;
  const cookieNames = [config.session.cookieName];
  app.decorateRequest('bffToken', null);
  app.decorateRequest('bffUpstreamStart', 0);
  app.decorateRequest('bffMetrics', null);

  for (const route of config.routes) {
    const urls: RouteLoginUrls = {
      signIn: loginUrlFor(route.scopes, config.identity.scopes),
      consent: `/auth/login?scopes=${encodeURIComponent(route.scopes.join(' '))}`,
    };
    const claimsLoginUrl = `${urls.consent}&claims=`;
    const metrics = deps.metrics.route(route.name);
    /** What is refused before any token work; undefined when the request may go on. */
    const refusalOf = (request: FastifyRequest): Error | undefined => {
      const refusal = requestRefusal(request);
      if (refusal) return refusal;
      if (route.methods && !route.methods.has(request.method)) return new Problems.MethodNotAllowed();
      if (route.auth === 'none') return undefined;
      if (isCrossSite(request, publicOrigin)) return new Problems.CrossSite();
      // A body of unknown length cannot be held to the size limit before the token work
      // (browsers always declare it): refuse it rather than stream it upstream unbounded.
      if (request.headers['transfer-encoding'] !== undefined && request.headers['content-length'] === undefined) return new Problems.LengthRequired();
      if (request.headers.upgrade?.toLowerCase() === 'websocket') {
        // Browsers cannot add headers to a WebSocket handshake but always send Origin:
        // requiring our own origin is the CSRF defence (cross-site WebSocket hijacking).
        if (request.headers.origin !== publicOrigin) return new Problems.CrossSite();
      } else if (route.csrfHeader && request.headers[route.csrfHeader] !== '1') {
        return new Problems.CsrfRequired(route.csrfHeader);
      }
      return undefined;
    };
    const usesSession = route.auth === 'user' || route.auth === 'user-or-client';
    /** The token when in-process copies of the session and the account answer alone; else undefined. */
    const cachedUserToken = (request: FastifyRequest): string | undefined => {
      const id = sessionCookie.sessionId(request);
      const record = id === undefined ? undefined : deps.sessions.peek(id);
      return record && deps.tokens.cachedForUser(record.accountKey, route);
    };
    // Callback style: the common cases (no token needed, a cached one) finish without a promise;
    // anything else takes the full path (store, refresh, problems) in routeToken.
    const preHandler = (request: FastifyRequest, _reply: FastifyReply, done: (err?: Error) => void) => {
      request.bffMetrics = metrics;
      const refusal = refusalOf(request);
      if (refusal) return done(refusal);
      const cached = usesSession ? cachedUserToken(request) : route.auth === 'client' ? deps.tokens.cachedForApp(route) : undefined;
      if (cached !== undefined) metrics.tokenOutcome('cache');
      if (route.auth === 'none' || cached !== undefined) {
        request.bffToken = cached ?? null;
        request.bffUpstreamStart = performance.now();
        return done();
      }
      routeToken(request, route, urls, deps, sessionCookie, metrics).then((token) => {
        request.bffToken = token;
        request.bffUpstreamStart = performance.now();
        done();
      }, done);
    };
    const rewriteRequestHeaders = (request: FastifyRequest, headers: Record<string, string | string[] | undefined>) => {
      const out = upstreamRequestHeaders(headers, {
        token: request.bffToken ?? undefined,
        cookieNames,
        clientIp: request.ip,
        proto: request.protocol,
        host: request.host,
        trustProxy: config.trustProxy,
      });
      // A route that limits methods must not let an upstream framework tunnel another one.
      if (route.methods) for (const h of METHOD_OVERRIDE_HEADERS) delete out[h];
      return out;
    };

    const upstreamFailed = (reply: FastifyReply, status: 502 | 504, error: Error) => {
      reply.log.warn({ route: route.name, err: { message: error.message, code: (error as { code?: string }).code } }, 'upstream failed');
      return reply.send(status === 504 ? new Problems.UpstreamTimeout() : new Problems.UpstreamUnavailable());
    };

    await app.register(httpProxy, {
      upstream: route.upstream,
      prefix: route.prefix === '/' ? '' : route.prefix,
      rewritePrefix: route.rewritePrefix === '/' ? '' : route.rewritePrefix,
      config: { bffRoute: route },
      preHandler,
      websocket: route.websocket,
      // reply-from's own info lines would make three log lines per request; app.ts writes one.
      disableRequestLogging: true,
      wsClientOptions: {
        // http-proxy hands an empty header set here; start from the browser's handshake like
        // an HTTP request does, less what the WebSocket client must generate itself.
        rewriteRequestHeaders: (_headers: Record<string, string>, request: FastifyRequest) =>
          upstreamRequestHeaders(handshakeHeaders(request.headers), { token: request.bffToken ?? undefined, cookieNames, clientIp: request.ip, proto: request.protocol, host: request.host, trustProxy: config.trustProxy }) as Record<string, string>,
      },
      undici: { connections: 256, pipelining: 1, keepAliveTimeout: 60_000 },
      replyOptions: {
        rewriteRequestHeaders,
        timeout: route.timeoutMs,
        // Upstream answers (503s included) pass through as they are: no silent retries.
        retryDelay: () => null,
        onResponse: (request: FastifyRequest, reply: FastifyReply, res: { statusCode: number; headers: Record<string, string | string[] | undefined>; stream: NodeJS.ReadableStream & { destroy(): void } }) => {
          metrics.upstreamSeconds((performance.now() - request.bffUpstreamStart) / 1000);
          const claims = res.statusCode === 401 && request.bffToken && route.auth !== 'client' ? claimsFromChallenge(res.headers['www-authenticate']) : undefined;
          if (claims) {
            // The API wants a fresh sign-in with more claims (CAE, step-up): a silent refresh
            // cannot satisfy that, so the SPA gets a loginUrl that carries the claims.
            res.stream.destroy();
            clearHeaders(reply);
            metrics.tokenOutcome('claims_challenge');
            const loginUrl = claimsLoginUrl + encodeURIComponent(claims);
            return reply.send(withExtras(new Problems.ClaimsChallenge(), { loginUrl, scopes: route.scopes }));
          }
          const length = Number(res.headers['content-length']);
          if (!(length <= BUFFERED_RESPONSE_MAX)) return reply.send(res.stream);
          // A small answer of declared length is read whole, then written to the browser at
          // once: cheaper than piping stream to stream (one write, no per-chunk work), and an
          // upstream that dies mid-body is a 502 rather than a truncated 200. Answers without
          // a length (streams, server-sent events) and larger ones pass through as streams.
          const chunks: Buffer[] = [];
          res.stream.on('data', (chunk: Buffer) => chunks.push(chunk));
          res.stream.on('error', (err: Error & { code?: string }) => {
            clearHeaders(reply);
            upstreamFailed(reply, err.code === 'UND_ERR_BODY_TIMEOUT' ? 504 : 502, err);
          });
          res.stream.on('end', () => reply.send(chunks.length === 1 ? chunks[0] : Buffer.concat(chunks)));
          return reply;
        },
        onError: (reply: FastifyReply, { error }: { error: Error & { statusCode?: number } }) => upstreamFailed(reply, error.statusCode === 504 ? 504 : 502, error),
      },
    } as never);
  }
}
