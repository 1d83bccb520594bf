/**
 * Signs a user in through the gateway and the dev provider the way a browser does, so the
 * benchmark drives a gateway with a real session: follows redirects, keeps cookies per
 * host:port and path, and submits the provider's forms (sign-in, consent). A condensed
 * copy of test/helpers/browserless.ts (test/ is not compiled; bench/ is).
 */
import { request, type Dispatcher } from 'undici';

interface Cookie {
  name: string;
  value: string;
  path: string;
}

class Jar {
  readonly #byHost = new Map<string, Map<string, Cookie>>();

  store(url: URL, setCookie: string | string[] | undefined): void {
    if (!setCookie) return;
    let cookies = this.#byHost.get(url.host);
    if (!cookies) this.#byHost.set(url.host, (cookies = new Map()));
    for (const line of Array.isArray(setCookie) ? setCookie : [setCookie]) {
      const [pair, ...attrs] = line.split(';');
      const eq = pair!.indexOf('=');
      if (eq <= 0) continue;
      const name = pair!.slice(0, eq).trim();
      const value = pair!.slice(eq + 1).trim();
      let path = url.pathname.lastIndexOf('/') > 0 ? url.pathname.slice(0, url.pathname.lastIndexOf('/')) : '/';
      let expired = false;
      for (const attr of attrs) {
        const [k = '', v = ''] = attr.split('=').map((s) => s.trim());
        const key = k.toLowerCase();
        if (key === 'path' && v.startsWith('/')) path = v;
        if (key === 'max-age' && Number(v) <= 0) expired = true;
        if (key === 'expires' && Date.parse(attr.slice(attr.indexOf('=') + 1)) <= Date.now()) expired = true;
      }
      const id = `${name}\u0000${path}`;
      if (expired) cookies.delete(id);
      else cookies.set(id, { name, value, path });
    }
  }

  header(url: URL): string {
    const out: Cookie[] = [];
    for (const c of this.#byHost.get(url.host)?.values() ?? []) {
      if (url.pathname === c.path || url.pathname.startsWith(c.path.endsWith('/') ? c.path : `${c.path}/`)) out.push(c);
    }
    return out
      .sort((a, b) => b.path.length - a.path.length)
      .map((c) => `${c.name}=${c.value}`)
      .join('; ');
  }
}

interface Page {
  status: number;
  url: URL;
  body: string;
  headers: Record<string, string | string[] | undefined>;
}

async function fetchOnce(url: URL, jar: Jar, method: string, body?: string, dispatcher?: Dispatcher): Promise<Page> {
  const headers: Record<string, string> = { 'user-agent': 'bff-gateway-bench', accept: 'text/html,application/json;q=0.9,*/*;q=0.8' };
  const cookie = jar.header(url);
  if (cookie) headers.cookie = cookie;
  if (body !== undefined) headers['content-type'] = 'application/x-www-form-urlencoded';
  const res = await request(url, { method: method as Dispatcher.HttpMethod, headers, body, dispatcher });
  const text = await res.body.text();
  jar.store(url, res.headers['set-cookie']);
  return { status: res.statusCode, url, body: text, headers: res.headers };
}

const ENTITIES: Record<string, string> = { amp: '&', lt: '<', gt: '>', quot: '"', apos: "'" };
const decode = (s: string) =>
  s.replace(/&(#x[0-9a-f]+|#\d+|[a-z]+);/gi, (whole, e: string) =>
    e[0] === '#' ? String.fromCodePoint(e[1] === 'x' || e[1] === 'X' ? parseInt(e.slice(2), 16) : parseInt(e.slice(1), 10)) : (ENTITIES[e.toLowerCase()] ?? whole),
  );

function attributes(tag: string): Record<string, string> {
  const out: Record<string, string> = {};
  const re = /([^\s=/>"']+)(?:\s*=\s*(?:"([^"]*)"|'([^']*)'|([^\s>]+)))?/g;
  const inner = tag.replace(/^<\s*[a-z]+/i, '').replace(/\/?>$/, '');
  for (let m = re.exec(inner); m; m = re.exec(inner)) out[m[1]!.toLowerCase()] = decode(m[2] ?? m[3] ?? m[4] ?? '');
  return out;
}

/** The first form of a page with the fields a browser submits (default submit button included). */
function firstForm(html: string, pageUrl: URL): { action: URL; method: string; fields: Array<[string, string]> } | undefined {
  const m = /<form\b[^>]*>([\s\S]*?)<\/form\s*>/i.exec(html);
  if (!m) return undefined;
  const attrs = attributes(m[0].slice(0, m[0].indexOf('>') + 1));
  const fields: Array<[string, string]> = [];
  for (const tag of m[1]!.match(/<input\b[^>]*>/gi) ?? []) {
    const a = attributes(tag);
    const type = (a.type ?? 'text').toLowerCase();
    if (!a.name || a.disabled !== undefined || ['submit', 'button', 'image', 'reset', 'file'].includes(type)) continue;
    if ((type === 'checkbox' || type === 'radio') && a.checked === undefined) continue;
    fields.push([a.name, a.value ?? '']);
  }
  const buttons = [...(m[1]!.match(/<button\b[^>]*>/gi) ?? []), ...(attrs.id ? (html.match(/<button\b[^>]*>/gi) ?? []).filter((t) => attributes(t).form === attrs.id) : [])]
    .map(attributes)
    .filter((a) => (a.type ?? 'submit').toLowerCase() === 'submit');
  const submitter = buttons.find((a) => a.autofocus !== undefined) ?? buttons[0];
  if (submitter?.name) fields.push([submitter.name, submitter.value ?? '']);
  return { action: new URL(attrs.action || pageUrl.href, pageUrl), method: (attrs.method ?? 'get').toUpperCase(), fields };
}

/**
 * Signs `login` in through the gateway at `gatewayUrl` and answers the Cookie header value
 * to send to it. Stops at the gateway's redirect after its callback (not followed).
 */
export async function signIn(gatewayUrl: string, login = 'bench-user', dispatcher?: Dispatcher): Promise<string> {
  const gateway = new URL(gatewayUrl);
  const jar = new Jar();
  let url = new URL('/auth/login?returnTo=%2F', gateway);
  let method = 'GET';
  let body: string | undefined;
  let leftGateway = false;
  for (let step = 0; step < 40; step++) {
    const page = await fetchOnce(url, jar, method, body, dispatcher);
    const location = page.headers.location;
    if ([301, 302, 303, 307, 308].includes(page.status) && typeof location === 'string') {
      const next = new URL(location, url);
      if (url.origin !== gateway.origin) leftGateway = true;
      if (leftGateway && url.origin === gateway.origin && next.origin === gateway.origin) {
        const cookie = jar.header(new URL('/', gateway));
        if (!cookie) throw new Error('sign-in ended without a gateway cookie');
        return cookie;
      }
      if (page.status !== 307 && page.status !== 308) {
        method = 'GET';
        body = undefined;
      }
      url = next;
      continue;
    }
    const form = String(page.headers['content-type'] ?? '').includes('html') ? firstForm(page.body, page.url) : undefined;
    if (!form) {
      const text = page.body.replace(/<style[\s\S]*?<\/style>/gi, '').replace(/<[^>]+>/g, ' ').replace(/\s+/g, ' ').trim();
      throw new Error(`sign-in stuck at ${page.url.href} (status ${page.status}): ${text.slice(0, 300)}`);
    }
    const params = new URLSearchParams();
    for (const [name, value] of form.fields) {
      params.append(name, name === 'login' ? login : name === 'password' ? 'any password' : value);
    }
    if (form.method === 'POST') {
      url = form.action;
      method = 'POST';
      body = params.toString();
    } else {
      url = new URL(form.action);
      url.search = params.toString();
      method = 'GET';
      body = undefined;
    }
  }
  throw new Error('sign-in did not finish in 40 steps');
}
