import createError from '@fastify/error';
import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';

/**
 * Typed errors with stable codes. `error` in the problem+json body is the code without
 * its BFF_ prefix, lower-cased: what the SPA switches on.
 */
export const Problems = {
  SessionExpired: createError('BFF_SESSION_EXPIRED', 'Sign-in required', 401),
  ConsentRequired: createError('BFF_CONSENT_REQUIRED', 'This route needs scopes the user has not granted; sign in again to grant them', 401),
  ClaimsChallenge: createError('BFF_CLAIMS_CHALLENGE', 'The API asks for a fresh sign-in with more claims', 401),
  CsrfRequired: createError('BFF_CSRF_REQUIRED', 'This route requires the %s header', 403),
  CrossSite: createError('BFF_CROSS_SITE', 'Cross-site requests are refused', 403),
  BadReturnTo: createError('BFF_INVALID_RETURN_TO', 'returnTo must be a same-origin relative path', 400),
  BadRequest: createError('BFF_INVALID_REQUEST', '%s', 400),
  BadPath: createError('BFF_INVALID_PATH', 'The request path is not acceptable', 400),
  LoginFailed: createError('BFF_LOGIN_FAILED', 'Sign-in could not be completed; start again', 400),
  MethodNotAllowed: createError('BFF_METHOD_NOT_ALLOWED', 'Method not allowed on this route', 405),
  LengthRequired: createError('BFF_LENGTH_REQUIRED', 'A request body on this route needs a Content-Length', 411),
  ProviderUnavailable: createError('BFF_PROVIDER_UNAVAILABLE', 'The identity provider is unavailable; try again shortly', 503),
  ProviderError: createError('BFF_PROVIDER_ERROR', 'The identity provider refused the request', 502),
  TokenStoreUnavailable: createError('BFF_TOKEN_STORE_UNAVAILABLE', 'The token store is unavailable; try again shortly', 503),
  UpstreamUnavailable: createError('BFF_UPSTREAM_UNAVAILABLE', 'The upstream API is unavailable', 502),
  UpstreamTimeout: createError('BFF_UPSTREAM_TIMEOUT', 'The upstream API did not answer in time', 504),
  NotFound: createError('BFF_NOT_FOUND', 'Not found', 404),
};

/** Extra members of a problem body (RFC 9457 extensions). */
export interface ProblemExtras {
  loginUrl?: string;
  retryAfterSec?: number;
  scopes?: readonly string[];
}

const EXTRAS = Symbol('problemExtras');

export function withExtras<E extends Error>(err: E, extras: ProblemExtras): E {
  (err as E & { [EXTRAS]?: ProblemExtras })[EXTRAS] = extras;
  return err;
}

/** Fastify's own codes mapped to ours, so every error body speaks one language. */
const FASTIFY_CODES: Record<string, string> = {
  FST_ERR_CTP_BODY_TOO_LARGE: 'payload_too_large',
  FST_ERR_CTP_INVALID_MEDIA_TYPE: 'unsupported_media_type',
  FST_ERR_CTP_EMPTY_JSON_BODY: 'invalid_request',
  FST_ERR_CTP_INVALID_CONTENT_LENGTH: 'invalid_request',
  FST_ERR_VALIDATION: 'invalid_request',
  FST_ERR_BAD_URL: 'invalid_path',
};

function errorCode(err: FastifyError): string {
  if (err.code?.startsWith('BFF_')) return err.code.slice(4).toLowerCase();
  if (err.code && FASTIFY_CODES[err.code]) return FASTIFY_CODES[err.code]!;
  const status = err.statusCode ?? 500;
  if (status === 502 || status === 503 || status === 504) return 'upstream_unavailable';
  return status >= 500 ? 'internal_error' : 'invalid_request';
}

export function sendProblem(reply: FastifyReply, err: FastifyError): FastifyReply {
  let status = err.statusCode ?? 500;
  if (status < 400 || status > 599) status = 500;
  const code = errorCode(err);
  const extras = (err as FastifyError & { [EXTRAS]?: ProblemExtras })[EXTRAS] ?? {};
  // Library and internal messages stay in the log; the body says only what the code means.
  const title = err.code?.startsWith('BFF_') ? err.message : status >= 500 ? 'Internal error' : httpTitle(status);
  const body: Record<string, unknown> = { type: 'about:blank', title, status, error: code };
  if (extras.loginUrl) body.loginUrl = extras.loginUrl;
  if (extras.scopes) body.scopes = extras.scopes;
  if (extras.retryAfterSec) reply.header('retry-after', String(extras.retryAfterSec));
  if (status === 401) reply.header('www-authenticate', 'Session');
  return reply.code(status).header('content-type', 'application/problem+json; charset=utf-8').header('cache-control', 'no-store').send(JSON.stringify(body));
}

function httpTitle(status: number): string {
  return { 400: 'Bad request', 404: 'Not found', 405: 'Method not allowed', 413: 'Payload too large', 414: 'URI too long', 415: 'Unsupported media type', 431: 'Request header fields too large' }[status] ?? 'Request refused';
}

/** The one place errors become responses. */
export function installProblemHandlers(app: FastifyInstance, refusal: (request: FastifyRequest) => FastifyError | undefined = () => undefined): void {
  app.setErrorHandler((err: FastifyError, request, reply) => {
    const status = err.statusCode ?? 500;
    if (status >= 500 && !err.code?.startsWith('BFF_')) request.log.error({ err }, 'request failed');
    else request.log.debug({ code: err.code }, 'request refused');
    return sendProblem(reply, err);
  });
  // A path no route serves is still checked first: a bad path is a 400 wherever it points.
  app.setNotFoundHandler((request, reply) => sendProblem(reply, refusal(request) ?? new Problems.NotFound()));
}
