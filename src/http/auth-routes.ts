import { randomBytes } from 'node:crypto';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import * as client from 'openid-client';
import { accountKeyOf } from '../identity/oidc.js';
import { IdentityError } from '../identity/types.js';
import { publicClaims, newSessionId } from '../session/sessions.js';
import { newBinding } from '../session/login-state.js';
import { StoreUnavailableError } from '../tokens/store.js';
import type { GatewayDeps } from './gateway-deps.js';
import { Problems, withExtras } from './problems.js';
import { safeReturnTo } from './return-to.js';
import { decodeClaims } from './claims-challenge.js';
import { isCrossSite, lookupSession } from './session-context.js';

const CALLBACK = '/auth/callback';

/** Builds the login URL a 401 hands the SPA; extra scopes make it an incremental consent. */
export function loginUrlFor(scopes?: readonly string[], signInScopes?: readonly string[]): string {
  const extra = scopes?.filter((s) => !signInScopes?.includes(s)) ?? [];
  return extra.length ? `/auth/login?scopes=${encodeURIComponent(extra.join(' '))}` : '/auth/login';
}

/** Maps a store or provider failure to the problem the browser sees; anything else is a bug. */
export function asProblem(err: unknown): Error {
  if (err instanceof StoreUnavailableError) return withExtras(new Problems.TokenStoreUnavailable(), { retryAfterSec: 5 });
  if (err instanceof IdentityError) {
    if (err.kind === 'unavailable') return withExtras(new Problems.ProviderUnavailable(), { retryAfterSec: 5 });
    if (err.kind === 'invalid_request' || err.kind === 'interaction_required' || err.kind === 'invalid_grant' || err.kind === 'invalid_response') return new Problems.LoginFailed();
  }
  return err as Error;
}

function single(value: unknown): string | undefined {
  return typeof value === 'string' ? value : undefined;
}

export async function authRoutes(app: FastifyInstance, deps: GatewayDeps): Promise<void> {
  const { config, identity, sessions, loginStates, tokens, metrics } = deps;
  const publicOrigin = new URL(config.publicUrl).origin;
  const redirectUri = config.publicUrl + CALLBACK;
  const resourcesByScope = new Map<string, string[]>();
  for (const r of config.routes) if (r.resource) for (const s of r.scopes) resourcesByScope.set(s, [...(resourcesByScope.get(s) ?? []), r.resource]);

  // Back-channel logout posts a form; nothing else here takes a body.
  app.addContentTypeParser('application/x-www-form-urlencoded', { parseAs: 'string', bodyLimit: 16 * 1024 }, (_req, body, done) => {
    done(null, Object.fromEntries(new URLSearchParams(body as string)));
  });

  app.addHook('onSend', async (_req, reply) => {
    reply.header('cache-control', 'no-store');
  });

  app.get('/auth/login', async (request, reply) => {
    const q = request.query as Record<string, unknown>;
    const returnTo = safeReturnTo(q.returnTo);
    if (returnTo === undefined) throw new Problems.BadReturnTo();
    const scopesParam = q.scopes === undefined ? '' : single(q.scopes);
    if (scopesParam === undefined) throw new Problems.BadRequest('scopes must be given once');
    const extra = scopesParam.split(/[ +]/).filter(Boolean);
    const unknown = extra.filter((s) => !config.knownScopes.has(s));
    if (unknown.length) throw new Problems.BadRequest('scopes names a scope no route uses');
    const scopes = [...new Set([...config.identity.scopes, ...extra])];
    let claims: string | undefined;
    if (q.claims !== undefined) {
      claims = typeof q.claims === 'string' ? decodeClaims(q.claims) : undefined;
      if (!claims) throw new Problems.BadRequest('claims must be the base64 JSON object of a claims challenge');
    }
    const resources = [...new Set(scopes.flatMap((s) => resourcesByScope.get(s) ?? []))];
    const state = client.randomState();
    const nonce = client.randomNonce();
    const codeVerifier = client.randomPKCECodeVerifier();
    let binding = request.session.get('b') as string | undefined;
    if (typeof binding !== 'string') {
      binding = newBinding();
      request.session.set('b', binding);
    }
    let url: URL;
    try {
      url = await identity.signInUrl({ redirectUri, state, nonce, codeVerifier, scopes, resources, extra: claims ? { claims } : undefined });
      await loginStates.save(state, { binding, nonce, codeVerifier, returnTo, scopes });
    } catch (err) {
      throw asProblem(err);
    }
    return reply.redirect(url.href, 302);
  });

  app.get(CALLBACK, async (request, reply) => {
    const q = request.query as Record<string, unknown>;
    const state = single(q.state);
    if (!state || (q.code !== undefined && typeof q.code !== 'string') || (q.iss !== undefined && typeof q.iss !== 'string')) throw new Problems.LoginFailed();
    let pending;
    try {
      pending = await loginStates.take(state, request.session.get('b'));
    } catch (err) {
      throw asProblem(err);
    }
    if (!pending) {
      request.log.info('sign-in refused: unknown, used or foreign state');
      throw new Problems.LoginFailed();
    }
    const rawQuery = request.url.slice(request.url.indexOf('?'));
    let signedIn;
    try {
      signedIn = await identity.redeemCode(new URL(redirectUri + rawQuery), { state, nonce: pending.nonce, codeVerifier: pending.codeVerifier, redirectUri });
    } catch (err) {
      const e = err as IdentityError;
      request.log.info({ kind: e.kind, providerError: e.providerError, reason: e.message }, 'sign-in refused');
      throw asProblem(err);
    }
    // A fresh session id at every sign-in: a planted cookie never becomes a session.
    const previous = request.session.get('s');
    const sessionId = newSessionId();
    try {
      if (typeof previous === 'string') await sessions.delete(previous);
      const record = await sessions.create(sessionId, {
        accountKey: signedIn.account.key,
        iss: signedIn.account.iss,
        sub: signedIn.account.sub,
        sid: signedIn.sid,
        logoutId: randomBytes(16).toString('base64url'),
        claims: publicClaims(signedIn.claims),
        idToken: signedIn.idToken,
      });
      await tokens.storeSignIn(signedIn.account, signedIn.refreshToken, record.absoluteExpiresAt, signedIn.refreshExpiresAt);
    } catch (err) {
      throw asProblem(err);
    }
    metrics.sessions.inc({ event: 'started' });
    request.session.set('s', sessionId);
    request.log.info({ account: signedIn.account.key }, 'signed in');
    return reply.redirect(pending.returnTo, 302);
  });

  app.get('/auth/user', async (request, reply) => {
    const found = await lookupSession(request.session.get('s'), sessions).catch((err) => {
      throw asProblem(err);
    });
    if (found.kind !== 'active') {
      if (found.kind === 'expired' && found.accountKey) await tokens.removeAccount(found.accountKey).catch(() => undefined);
      throw withExtras(new Problems.SessionExpired(), { loginUrl: loginUrlFor() });
    }
    const { record } = found;
    return reply.send({
      ...record.claims,
      sub: record.sub,
      iss: record.iss,
      logoutUrl: `/auth/logout?sid=${encodeURIComponent(record.logoutId)}`,
      expiresAt: new Date(sessions.expiresAt(record)).toISOString(),
    });
  });

  const logout = async (request: FastifyRequest, reply: FastifyReply) => {
    const found = await lookupSession(request.session.get('s'), sessions).catch((err) => {
      throw asProblem(err);
    });
    if (request.method === 'POST') {
      if (isCrossSite(request, publicOrigin)) throw new Problems.CrossSite();
      if (request.headers['x-csrf'] !== '1') throw new Problems.CsrfRequired('X-CSRF');
    } else if (found.kind === 'active') {
      const sid = single((request.query as Record<string, unknown>).sid);
      if (!sid || sid !== found.record.logoutId) throw new Problems.BadRequest('logout needs the sid /auth/user hands out, or a POST with X-CSRF: 1');
    }
    let idTokenHint: string | undefined;
    if (found.kind === 'active') {
      idTokenHint = found.record.idToken;
      let refreshToken: string | undefined;
      try {
        refreshToken = await tokens.refreshTokenOf(found.record.accountKey);
        await sessions.delete(found.id);
        await tokens.removeAccount(found.record.accountKey);
      } catch (err) {
        throw asProblem(err);
      }
      metrics.sessions.inc({ event: 'logout' });
      if (refreshToken) {
        await identity.revoke(refreshToken).catch((err: IdentityError) => request.log.warn({ kind: err.kind }, 'refresh token revocation failed'));
      }
    }
    request.session.delete();
    let target = config.postLogoutRedirectUri;
    try {
      target = identity.logoutUrl({ idTokenHint, postLogoutRedirectUri: config.postLogoutRedirectUri })?.href ?? target;
    } catch {
      // Provider metadata not loaded: the gateway session is over all the same.
    }
    return reply.redirect(target, 302);
  };
  app.get('/auth/logout', logout);
  app.post('/auth/logout', logout);

  app.post('/auth/backchannel-logout', async (request, reply) => {
    const body = request.body as Record<string, unknown> | undefined;
    const token = single(body?.logout_token);
    const refuse = () => reply.code(400).header('content-type', 'application/json').send({ error: 'invalid_request' });
    if (!token) return refuse();
    let claims;
    try {
      claims = await identity.verifyLogoutToken(token);
      if (await deps.seenLogoutToken(claims.jti)) throw new IdentityError('invalid_request', 'replayed logout token');
    } catch (err) {
      request.log.info({ reason: (err as Error).message }, 'back-channel logout refused');
      return refuse();
    }
    try {
      const accounts = new Set<string>();
      if (claims.sid) for (const a of await sessions.deleteBySid(claims.iss, claims.sid)) accounts.add(a);
      if (claims.sub) {
        const key = identity.accountKeyOf?.(claims.iss, claims.sub) ?? accountKeyOf(claims.iss, claims.sub);
        if (!claims.sid) await sessions.deleteByAccount(key);
        accounts.add(key);
      }
      for (const a of accounts) await tokens.removeAccount(a);
      metrics.sessions.inc({ event: 'backchannel_logout' }, accounts.size);
    } catch (err) {
      throw asProblem(err);
    }
    return reply.code(200).send();
  });
}
