import type { IncomingHttpHeaders } from 'node:http';

/**
 * Never forwarded as the browser sent them: hop-by-hop headers (RFC 9110 7.6.1), proxy
 * credentials, the browser's Authorization, and what the gateway rewrites itself.
 */
const DROPPED = new Set(['connection', 'keep-alive', 'proxy-connection', 'proxy-authorization', 'proxy-authenticate', 'te', 'trailer', 'transfer-encoding', 'upgrade', 'authorization', 'cookie', 'forwarded']);
/** Untrusted forwarding headers, including underscore spellings some servers fold into dashes. */
const FORWARDING = /^x[-_](forwarded[-_]|real[-_]ip$|original[-_])/;

export interface UpstreamContext {
  /** Bearer token to inject, when the route has one. */
  token?: string;
  /** The gateway's own cookie names, removed from the Cookie header. */
  cookieNames: readonly string[];
  clientIp: string;
  proto: string;
  host: string;
  /** When true, the client's X-Forwarded-For chain is kept and extended. */
  trustProxy: boolean;
}

/** The name of one `name=value` part of a Cookie header. */
function cookieName(part: string): string {
  const eq = part.indexOf('=');
  return (eq === -1 ? part : part.slice(0, eq)).trim();
}

/** Removes the named cookies from a Cookie header value; undefined when nothing is left. */
export function withoutCookies(cookie: string | undefined, names: readonly string[]): string | undefined {
  if (!cookie) return undefined;
  // No named cookie in it, or only one cookie (an SPA's usual header: the gateway's own): no splitting and joining.
  if (!names.some((n) => cookie.includes(n))) return cookie.trim() || undefined;
  if (!cookie.includes(';')) return names.includes(cookieName(cookie)) ? undefined : cookie.trim() || undefined;
  const kept = cookie.split(';').filter((part) => !names.includes(cookieName(part)));
  const out = kept.map((p) => p.trim()).filter(Boolean).join('; ');
  return out || undefined;
}

/**
 * The headers the upstream receives. Pure: called from reply-from's synchronous
 * rewriteRequestHeaders after the token work is done.
 */
export function upstreamRequestHeaders(headers: IncomingHttpHeaders, ctx: UpstreamContext): IncomingHttpHeaders {
  // One pass over the headers: this runs on every proxied request.
  const out: IncomingHttpHeaders = {};
  for (const name in headers) {
    if (DROPPED.has(name) || (name.charCodeAt(0) === 120 /* x */ && FORWARDING.test(name))) continue;
    out[name] = headers[name];
  }
  const cookie = withoutCookies(headers.cookie, ctx.cookieNames);
  if (cookie) out.cookie = cookie;
  const priorFor = ctx.trustProxy ? headers['x-forwarded-for'] : undefined;
  out['x-forwarded-for'] = priorFor ? `${priorFor}, ${ctx.clientIp}` : ctx.clientIp;
  out['x-forwarded-proto'] = ctx.proto;
  out['x-forwarded-host'] = ctx.host;
  if (ctx.token) out.authorization = `Bearer ${ctx.token}`;
  return out;
}
