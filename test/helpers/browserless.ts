/**
 * A browser without a browser: follows redirects, keeps cookies per origin and submits the
 * HTML forms of the provider's pages (sign-in, consent, logout, form_post), so tests can
 * sign a user in through the gateway and the real provider.
 */
import { request, type Dispatcher } from 'undici';

interface StoredCookie {
  value: string;
  path: string;
  expiresAt: number; // ms since epoch; Infinity for session cookies
}

/** Cookies per host:port (unlike a browser, which ignores the port). Domain and Secure are ignored. */
export class CookieJar {
  private readonly byHost = new Map<string, Map<string, StoredCookie>>();

  /** Store the cookies of one or more Set-Cookie header values received from `url`. */
  setCookies(url: string | URL, setCookie: string | string[] | undefined): void {
    if (!setCookie) return;
    const { host, pathname } = new URL(url);
    let cookies = this.byHost.get(host);
    if (!cookies) this.byHost.set(host, (cookies = new Map()));
    for (const line of Array.isArray(setCookie) ? setCookie : [setCookie]) {
      const [pair, ...attributes] = line.split(';');
      const eq = pair.indexOf('=');
      if (eq <= 0) continue;
      const name = pair.slice(0, eq).trim();
      const value = pair.slice(eq + 1).trim();
      const defaultPath = pathname.lastIndexOf('/') > 0 ? pathname.slice(0, pathname.lastIndexOf('/')) : '/';
      let path = defaultPath;
      let expiresAt = Infinity;
      let maxAgeSeen = false;
      for (const attribute of attributes) {
        const i = attribute.indexOf('=');
        const key = (i === -1 ? attribute : attribute.slice(0, i)).trim().toLowerCase();
        const val = i === -1 ? '' : attribute.slice(i + 1).trim();
        if (key === 'path' && val.startsWith('/')) path = val;
        else if (key === 'max-age' && /^-?\d+$/.test(val)) {
          maxAgeSeen = true;
          expiresAt = Date.now() + Number(val) * 1000;
        } else if (key === 'expires' && !maxAgeSeen) {
          const t = Date.parse(val);
          if (!Number.isNaN(t)) expiresAt = t;
        }
      }
      const key = `${name}\u0000${path}`;
      if (expiresAt <= Date.now()) cookies.delete(key);
      else cookies.set(key, { value, path, expiresAt });
    }
  }

  /** The Cookie header value for a request to `url` ('' when none). */
  header(url: string | URL): string {
    const { host, pathname } = new URL(url);
    const cookies = this.byHost.get(host);
    if (!cookies) return '';
    const now = Date.now();
    const out: Array<{ name: string; value: string; path: string }> = [];
    for (const [key, cookie] of cookies) {
      if (cookie.expiresAt <= now) {
        cookies.delete(key);
        continue;
      }
      const p = cookie.path;
      if (pathname === p || pathname.startsWith(p.endsWith('/') ? p : `${p}/`)) {
        out.push({ name: key.slice(0, key.indexOf('\u0000')), value: cookie.value, path: p });
      }
    }
    out.sort((a, b) => b.path.length - a.path.length);
    return out.map((c) => `${c.name}=${c.value}`).join('; ');
  }

  /** The value of one cookie for `url`, if any. */
  get(url: string | URL, name: string): string | undefined {
    for (const part of this.header(url).split('; ')) {
      const eq = part.indexOf('=');
      if (eq > 0 && part.slice(0, eq) === name) return part.slice(eq + 1);
    }
    return undefined;
  }

  /** Forget the cookies of one host:port (of `url`), or all of them. */
  clear(url?: string | URL): void {
    if (url === undefined) this.byHost.clear();
    else this.byHost.delete(new URL(url).host);
  }
}

export interface BrowseResponse {
  status: number;
  /** The URL of the last response fetched. */
  url: string;
  body: string;
  headers: Record<string, string | string[] | undefined>;
  /** Set when stopped before following a redirect: where it pointed. */
  location?: string;
}

export interface BrowseInit {
  method?: string;
  headers?: Record<string, string>;
  body?: string;
  dispatcher?: Dispatcher;
  maxRedirects?: number;
  /** Do not follow a redirect to a URL for which this returns true; return with `location` set. */
  stopAt?: (location: URL, from: URL) => boolean;
}

async function fetchOnce(url: URL, jar: CookieJar, init: BrowseInit): Promise<BrowseResponse> {
  const headers: Record<string, string> = { 'user-agent': 'browserless-test', accept: 'text/html,application/json;q=0.9,*/*;q=0.8', ...init.headers };
  const cookie = jar.header(url);
  if (cookie) headers.cookie = cookie;
  const res = await request(url, {
    method: (init.method ?? 'GET') as Dispatcher.HttpMethod,
    headers,
    body: init.body,
    dispatcher: init.dispatcher,
  });
  const body = await res.body.text();
  jar.setCookies(url, res.headers['set-cookie']);
  return { status: res.statusCode, url: url.href, body, headers: res.headers };
}

const isRedirect = (status: number) => [301, 302, 303, 307, 308].includes(status);

/** Request `url` and follow redirects (303 and, as browsers do, 301/302 after POST become GET). */
export async function followRedirects(url: string, jar: CookieJar, init: BrowseInit = {}): Promise<BrowseResponse> {
  let current = new URL(url);
  let req: BrowseInit = { ...init };
  const max = init.maxRedirects ?? 20;
  for (let hop = 0; ; hop += 1) {
    const res = await fetchOnce(current, jar, req);
    const location = res.headers.location;
    if (!isRedirect(res.status) || typeof location !== 'string') return res;
    const next = new URL(location, current);
    if (hop >= max || init.stopAt?.(next, current)) return { ...res, location: next.href };
    if (res.status === 303 || ((res.status === 301 || res.status === 302) && (req.method ?? 'GET') !== 'GET')) {
      req = { dispatcher: init.dispatcher, headers: init.headers ? { ...init.headers } : undefined };
      if (req.headers) {
        delete req.headers['content-type'];
      }
    }
    current = next;
  }
}

export interface HtmlForm {
  action: string;
  method: string;
  fields: Array<[string, string]>;
}

const ENTITIES: Record<string, string> = { amp: '&', lt: '<', gt: '>', quot: '"', apos: "'", nbsp: '\u00a0' };
function decodeEntities(text: string): string {
  return text.replace(/&(#x[0-9a-f]+|#\d+|[a-z]+);/gi, (whole, entity: string) => {
    if (entity[0] === '#') {
      const code = entity[1] === 'x' || entity[1] === 'X' ? parseInt(entity.slice(2), 16) : parseInt(entity.slice(1), 10);
      return Number.isFinite(code) ? String.fromCodePoint(code) : whole;
    }
    return ENTITIES[entity.toLowerCase()] ?? whole;
  });
}

function attributes(tag: string): Record<string, string> {
  const out: Record<string, string> = {};
  const re = /([^\s=/>"']+)(?:\s*=\s*(?:"([^"]*)"|'([^']*)'|([^\s>]+)))?/g;
  const inner = tag.replace(/^<\s*[a-z]+/i, '').replace(/\/?>$/, '');
  for (let m = re.exec(inner); m; m = re.exec(inner)) {
    out[m[1].toLowerCase()] = decodeEntities(m[2] ?? m[3] ?? m[4] ?? '');
  }
  return out;
}

/**
 * The forms of an HTML page with what a browser would submit: inputs (text, hidden,
 * password, checked boxes), plus the default submit button's name=value (the autofocused
 * one, else the first), including buttons associated through form="id".
 */
export function parseForms(html: string, pageUrl: string): HtmlForm[] {
  const forms: HtmlForm[] = [];
  const formRe = /<form\b[^>]*>([\s\S]*?)<\/form\s*>/gi;
  for (let m = formRe.exec(html); m; m = formRe.exec(html)) {
    const attrs = attributes(m[0].slice(0, m[0].indexOf('>') + 1));
    const inner = m[1];
    const fields: Array<[string, string]> = [];
    for (const tag of inner.match(/<input\b[^>]*>/gi) ?? []) {
      const a = attributes(tag);
      const type = (a.type ?? 'text').toLowerCase();
      if (!a.name || a.disabled !== undefined) continue;
      if (['submit', 'button', 'image', 'reset', 'file'].includes(type)) continue;
      if ((type === 'checkbox' || type === 'radio') && a.checked === undefined) continue;
      fields.push([a.name, a.value ?? (type === 'checkbox' || type === 'radio' ? 'on' : '')]);
    }
    const buttons = [
      ...(inner.match(/<button\b[^>]*>/gi) ?? []),
      ...(inner.match(/<input\b[^>]*type\s*=\s*["']?submit[^>]*>/gi) ?? []),
      ...(attrs.id ? (html.match(/<button\b[^>]*>/gi) ?? []).filter((tag) => attributes(tag).form === attrs.id) : []),
    ]
      .map(attributes)
      .filter((a) => (a.type ?? 'submit').toLowerCase() === 'submit');
    const submitter = buttons.find((a) => a.autofocus !== undefined) ?? buttons[0];
    if (submitter?.name) fields.push([submitter.name, submitter.value ?? '']);
    forms.push({
      action: new URL(attrs.action || pageUrl, pageUrl).href,
      method: (attrs.method ?? 'get').toUpperCase(),
      fields,
    });
  }
  return forms;
}

/** Submit a form as a browser would, with `values` overriding or adding fields; follows redirects. */
export async function submitForm(form: HtmlForm, jar: CookieJar, values: Record<string, string> = {}, init: BrowseInit = {}): Promise<BrowseResponse> {
  const params = new URLSearchParams();
  const seen = new Set<string>();
  for (const [name, value] of form.fields) {
    if (name in values) {
      if (!seen.has(name)) params.append(name, values[name]);
      seen.add(name);
    } else params.append(name, value);
  }
  for (const [name, value] of Object.entries(values)) if (!seen.has(name)) params.append(name, value);

  if (form.method === 'POST') {
    return followRedirects(form.action, jar, {
      ...init,
      method: 'POST',
      headers: { ...init.headers, 'content-type': 'application/x-www-form-urlencoded' },
      body: params.toString(),
    });
  }
  const url = new URL(form.action);
  url.search = params.toString();
  return followRedirects(url.href, jar, { ...init, method: 'GET' });
}

export interface BrowseOptions {
  /** User name for the provider's sign-in page (default 'alice'). */
  login?: string;
  /** Password typed into the sign-in page (any value works on the dev provider). */
  password?: string;
  dispatcher?: Dispatcher;
  /** Stop before following a redirect to such a URL. */
  stopAt?: (location: URL, from: URL) => boolean;
  /** Forms submitted at most (default 10). */
  maxForms?: number;
}

/**
 * Open `url` and click through: follow redirects and submit each page's first form
 * (filling `login` and `password`) until a page without a form, or `stopAt`.
 */
export async function browse(url: string, jar: CookieJar, opts: BrowseOptions = {}): Promise<BrowseResponse> {
  const init: BrowseInit = { dispatcher: opts.dispatcher, stopAt: opts.stopAt };
  let res = await followRedirects(url, jar, init);
  for (let i = 0; i < (opts.maxForms ?? 10); i += 1) {
    if (res.location !== undefined) return res;
    const contentType = String(res.headers['content-type'] ?? '');
    if (!contentType.includes('html')) return res;
    const [form] = parseForms(res.body, res.url);
    if (!form) return res;
    const values: Record<string, string> = {};
    for (const [name] of form.fields) {
      if (name === 'login') values.login = opts.login ?? 'alice';
      if (name === 'password') values.password = opts.password ?? 'any password';
    }
    res = await submitForm(form, jar, values, init);
  }
  return res;
}

export interface SignInResult {
  jar: CookieJar;
  finalUrl: string;
  status: number;
  /** The Cookie header value to send to the gateway. */
  gatewayCookie: string;
}

export interface SignInOptions {
  /** User name (default 'alice'). */
  login?: string;
  /** Same-origin path the gateway returns to (default '/'). */
  returnTo?: string;
  /** Extra scopes for the login request (space separated), as `scopes=`. */
  scopes?: string;
  /** Default '/auth/login'. */
  loginPath?: string;
  /** Reuse a jar (e.g. to sign in again with the provider session still there). */
  jar?: CookieJar;
  /** undici dispatcher, e.g. an Agent that trusts a private CA. */
  dispatcher?: Dispatcher;
}

/**
 * Sign in through the gateway: GET its login endpoint, go through the provider's pages,
 * and stop once the gateway answers its callback with the redirect to returnTo (which is
 * not fetched). Throws when the flow gets stuck anywhere but the gateway.
 */
export async function signIn(gatewayBaseUrl: string, opts: SignInOptions = {}): Promise<SignInResult> {
  const jar = opts.jar ?? new CookieJar();
  const gateway = new URL(gatewayBaseUrl);
  const loginUrl = new URL(opts.loginPath ?? '/auth/login', gateway);
  loginUrl.searchParams.set('returnTo', opts.returnTo ?? '/');
  if (opts.scopes) loginUrl.searchParams.set('scopes', opts.scopes);

  let leftGateway = false;
  const res = await browse(loginUrl.href, jar, {
    login: opts.login,
    dispatcher: opts.dispatcher,
    stopAt(location, from) {
      if (from.origin !== gateway.origin) leftGateway = true;
      // The gateway's answer to the callback: a redirect from the gateway back onto itself,
      // after the trip to the provider.
      return leftGateway && from.origin === gateway.origin && location.origin === gateway.origin;
    },
  });
  const finalUrl = res.location ?? res.url;
  if (new URL(res.url).origin !== gateway.origin) {
    const text = res.body.replace(/<style[\s\S]*?<\/style>/gi, '').replace(/<[^>]+>/g, ' ').replace(/\s+/g, ' ').trim();
    throw new Error(`sign-in stopped at ${res.url} with status ${res.status}: ${text.slice(0, 300)}`);
  }
  return { jar, finalUrl, status: res.status, gatewayCookie: jar.header(new URL('/', gateway)) };
}
