import type { FastifyError, FastifyRequest } from 'fastify';
import { Problems } from './problems.js';
import { isPlainPath } from './request-path.js';

/** Header, URL and body limits: oversized input is refused before any token work. */
export const LIMITS = { maxHeaderSize: 16 * 1024, maxUrlLength: 8 * 1024, bodyLimit: 10 * 1024 * 1024 };

/**
 * What every request is checked for before routing or token work: the problem to answer,
 * or undefined. Proxy routes run it first thing in their preHandler, every other route in
 * an onRequest hook (a hook of its own would cost each API call more than the checks do).
 */
export function requestRefusal(request: FastifyRequest): FastifyError | undefined {
  if (request.url.length > LIMITS.maxUrlLength) return Object.assign(new Error('URI too long'), { statusCode: 414 }) as FastifyError;
  // Proxied routes stream the body and never apply bodyLimit: refuse a declared oversize
  // body here, before the route's token work (a chunked body is not covered; see SECURITY.md).
  if (Number(request.headers['content-length']) > LIMITS.bodyLimit) {
    return Object.assign(new Error('Payload too large'), { statusCode: 413, code: 'FST_ERR_CTP_BODY_TOO_LARGE' }) as FastifyError;
  }
  if (!isPlainPath(request.url)) return new Problems.BadPath() as FastifyError;
  return undefined;
}
