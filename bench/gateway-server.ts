/**
 * A gateway process for the benchmark, built with the same createGateway() as
 * `bff-gateway` and configured through routes.yaml text (BENCH_GATEWAY_YAML, `${VAR}`s
 * from the environment).
 *
 * BENCH_MODE=serve (default): listens and serves; the parent signs in and drives it.
 * BENCH_MODE=accounts: does not listen; on request it creates N signed-in accounts through
 * the gateway's own session store and token service (memory store) and reports how much
 * the process grew. Run with --expose-gc so the figures are after a full collection.
 */
import { parseRoutesFile, formatProblem } from '../src/config/load.js';
import { createGateway } from '../src/server.js';
import { accountKeyOf } from '../src/identity/oidc.js';
import type { AccountRef } from '../src/identity/types.js';
import { newSessionId } from '../src/session/sessions.js';
import { randomBytes } from 'node:crypto';
import { fatal, send, serveParent } from './ipc.js';
import { FAKE_SIZES, b64, fakeIdentity } from './fake-identity.js';

function collect(): NodeJS.MemoryUsage {
  const gc = (globalThis as { gc?: () => void }).gc;
  if (gc) for (let i = 0; i < 3; i++) gc();
  return process.memoryUsage();
}

export interface AccountsReport {
  count: number;
  baseline: { rss: number; heapUsed: number };
  afterSignIn: { rss: number; heapUsed: number };
  afterFirstCall: { rss: number; heapUsed: number };
  gcExposed: boolean;
  sizes: typeof FAKE_SIZES;
  ms: number;
}

async function main(): Promise<void> {
  const yaml = process.env.BENCH_GATEWAY_YAML;
  if (!yaml) throw new Error('BENCH_GATEWAY_YAML is not set');
  const parsed = parseRoutesFile(yaml, 'bench-routes.yaml', process.env);
  if (!parsed.ok) throw new Error(parsed.problems.map(formatProblem).join('\n'));
  const config = parsed.config;
  const mode = process.env.BENCH_MODE ?? 'serve';

  if (mode === 'accounts') {
    const issuer = config.identity.issuer ?? 'https://idp.bench.invalid';
    const gateway = await createGateway(config, { identity: fakeIdentity(issuer) });
    const route = config.routes.find((r) => r.auth === 'user');
    if (!route) throw new Error('accounts mode needs a route with auth: user');
    serveParent({
      onExit: () => gateway.close(),
      async work(kind, args) {
        if (kind !== 'accounts') throw new Error(`unknown work ${kind}`);
        const count = (args as { count: number }).count;
        const started = performance.now();
        const accounts: AccountRef[] = [];
        for (let i = 0; i < count; i++) {
          const sub = `bench-user-${i}-${b64(8)}`;
          accounts.push({ key: accountKeyOf(issuer, sub), iss: issuer, sub });
        }
        const baseline = collect();
        const { sessions, tokens } = gateway.deps;
        // What /auth/callback stores: the session record, then the account's refresh token.
        for (const account of accounts) {
          const record = await sessions.create(newSessionId(), {
            accountKey: account.key,
            iss: account.iss,
            sub: account.sub,
            sid: b64(22),
            logoutId: randomBytes(16).toString('base64url'),
            claims: { sub: account.sub, name: account.sub, preferred_username: account.sub, email: `${account.sub}@example.com`, email_verified: true },
            idToken: b64(FAKE_SIZES.idToken),
          });
          await tokens.storeSignIn(account, b64(FAKE_SIZES.refreshToken), record.absoluteExpiresAt);
        }
        const afterSignIn = collect();
        // What the first API call adds: one cached access token for the route's scopes.
        for (const account of accounts) {
          const outcome = await tokens.forUser(account, route);
          if (outcome.kind !== 'bearer') throw new Error(`token acquisition failed: ${JSON.stringify(outcome)}`);
        }
        const afterFirstCall = collect();
        const pick = (m: NodeJS.MemoryUsage) => ({ rss: m.rss, heapUsed: m.heapUsed });
        const report: AccountsReport = {
          count,
          baseline: pick(baseline),
          afterSignIn: pick(afterSignIn),
          afterFirstCall: pick(afterFirstCall),
          gcExposed: typeof (globalThis as { gc?: unknown }).gc === 'function',
          sizes: FAKE_SIZES,
          ms: performance.now() - started,
        };
        return report;
      },
    });
    send({ type: 'ready', port: 0 });
    return;
  }

  const gateway = await createGateway(config);
  serveParent({ onExit: () => gateway.close() });
  await gateway.discovered;
  await gateway.app.listen({ host: config.listen.host, port: config.listen.port });
  send({ type: 'ready', port: config.listen.port });
}

main().catch(fatal);
