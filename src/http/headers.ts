import type { IncomingHttpHeaders } from 'node:http';

/** Hop-by-hop headers (RFC 9110 7.6.1) and proxy credentials: never forwarded. */
const HOP_BY_HOP = ['connection', 'keep-alive', 'proxy-connection', 'proxy-authorization', 'proxy-authenticate', 'te', 'trailer', 'transfer-encoding', 'upgrade'];

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

/** Removes the named cookies from a Cookie header value; undefined when nothing is left. */
export function withoutCookies(cookie: string | undefined, names: readonly string[]): string | undefined {
  if (!cookie) return undefined;
  const kept = cookie.split(';').filter((part) => {
    const name = part.slice(0, part.indexOf('=') === -1 ? undefined : part.indexOf('=')).trim();
    return !names.includes(name);
  });
  const out = kept.map((p) => p.trim()).filter(Boolean).join('; ');
  return out || undefined;
}

/**
 * The headers the upstream receives. Pure: called from reply-from's synchronous
 * rewriteRequestHeaders after the token work is done.
 */
export function upstreamRequestHeaders(headers: IncomingHttpHeaders, ctx: UpstreamContext): IncomingHttpHeaders {
  const out: IncomingHttpHeaders = { ...headers };
  for (const h of HOP_BY_HOP) delete out[h];
  delete out.authorization;
  const priorFor = ctx.trustProxy ? headers['x-forwarded-for'] : undefined;
  for (const name of Object.keys(out)) {
    // Untrusted forwarding headers, including underscore spellings some servers fold into dashes.
    if (/^(x[-_]forwarded[-_]|forwarded$|x[-_]real[-_]ip$|x[-_]original[-_])/.test(name)) delete out[name];
  }
  const cookie = withoutCookies(headers.cookie, ctx.cookieNames);
  if (cookie) out.cookie = cookie;
  else delete out.cookie;
  out['x-forwarded-for'] = priorFor ? `${priorFor}, ${ctx.clientIp}` : ctx.clientIp;
  out['x-forwarded-proto'] = ctx.proto;
  out['x-forwarded-host'] = ctx.host;
  if (ctx.token) out.authorization = `Bearer ${ctx.token}`;
  return out;
}
