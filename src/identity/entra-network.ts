/**
 * MSAL's network module on fetch: every call to the provider ends within the configured
 * timeout (MSAL's own client has none for token requests), and failures come back as
 * MSAL errors whose code the back end maps (network_error → unavailable).
 */
import { AuthError, type INetworkModule, type NetworkRequestOptions, type NetworkResponse } from '@azure/msal-node';

export type FetchLike = (input: string | URL, init?: RequestInit) => Promise<Response>;

/** The codes this module throws, as AuthError.errorCode. */
export const NETWORK_ERROR = 'network_error';
export const NON_JSON_RESPONSE = 'non_json_response';

export interface FetchNetworkOptions {
  timeoutMs: number;
  fetch?: FetchLike;
  /**
   * Extra form parameters for token requests of one grant type. MSAL sends no `resource`
   * (RFC 8707) with the client credentials grant; an operation that needs one adds it here.
   */
  extraTokenParams?: { grantType: string; params: Record<string, string> };
}

export class FetchNetworkClient implements INetworkModule {
  constructor(private readonly opts: FetchNetworkOptions) {}

  sendGetRequestAsync<T>(url: string, options?: NetworkRequestOptions): Promise<NetworkResponse<T>> {
    return this.#send<T>(url, { method: 'GET', headers: options?.headers });
  }

  sendPostRequestAsync<T>(url: string, options?: NetworkRequestOptions): Promise<NetworkResponse<T>> {
    let body = options?.body ?? '';
    const extra = this.opts.extraTokenParams;
    if (extra) {
      const form = new URLSearchParams(body);
      if (form.get('grant_type') === extra.grantType) {
        for (const [k, v] of Object.entries(extra.params)) if (!form.has(k)) form.append(k, v);
        body = form.toString();
      }
    }
    return this.#send<T>(url, { method: 'POST', headers: options?.headers, body });
  }

  async #send<T>(url: string, init: { method: string; headers?: Record<string, string>; body?: string }): Promise<NetworkResponse<T>> {
    const doFetch = this.opts.fetch ?? globalThis.fetch;
    let res: Response;
    let text: string;
    try {
      res = await doFetch(url, { ...init, redirect: 'manual', signal: AbortSignal.timeout(this.opts.timeoutMs) });
      text = await res.text();
    } catch (err) {
      const e = err as Error & { cause?: { code?: string } };
      const what = e?.name === 'TimeoutError' || e?.name === 'AbortError' ? `no answer within ${this.opts.timeoutMs} ms` : `request failed${e?.cause?.code ? ` (${e.cause.code})` : ''}`;
      throw new AuthError(NETWORK_ERROR, '', `${init.method} ${endpoint(url)}: ${what}`);
    }
    const headers: Record<string, string> = {};
    res.headers.forEach((v, k) => {
      headers[k] = v;
    });
    let body: unknown;
    try {
      body = JSON.parse(text);
    } catch {
      // An HTML error page of a proxy or an outage: transient when the status says so.
      const code = res.status >= 500 || res.status === 429 ? NETWORK_ERROR : NON_JSON_RESPONSE;
      throw new AuthError(code, '', `${init.method} ${endpoint(url)}: answered ${res.status} without JSON`);
    }
    return { headers, body: body as T, status: res.status };
  }
}

/** The URL without its query (which carries correlation ids, never needed in a message). */
function endpoint(url: string): string {
  const u = new URL(url);
  return u.origin + u.pathname;
}
