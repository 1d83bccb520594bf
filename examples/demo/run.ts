/**
 * `npm run demo`: the development provider, the sample API, the sample SPA and the gateway
 * in front of them, on this machine. Open the printed URL and sign in with any name.
 *
 *   PORT=9090 npm run demo     # another gateway port (default 8080)
 *   LOG_LEVEL=debug npm run demo
 */
import { createServer } from 'node:net';
import { Writable } from 'node:stream';
import { DEV_LOGIN_HINT, startDemo, type Demo } from './stack.js';

const HOST = '127.0.0.1';
const tty = process.stdout.isTTY;
const bold = (s: string) => (tty ? `\x1b[1m${s}\x1b[22m` : s);
const dim = (s: string) => (tty ? `\x1b[2m${s}\x1b[22m` : s);

function fail(message: string): never {
  console.error(`\n${message}\n`);
  process.exit(1);
}

function parsePort(raw: string | undefined): number {
  if (raw === undefined || raw === '') return 8080;
  const port = Number(raw);
  if (!/^\d+$/.test(raw) || port < 1 || port > 65535) fail(`PORT=${raw} is not a port number (1-65535). Example: PORT=8081 npm run demo`);
  return port;
}

/** Resolves with the error code when the port cannot be bound, undefined when it is free. */
function probe(port: number, host: string): Promise<string | undefined> {
  return new Promise((resolve) => {
    const srv = createServer();
    srv.once('error', (err: NodeJS.ErrnoException) => resolve(err.code ?? err.message));
    srv.listen({ port, host, exclusive: true }, () => srv.close(() => resolve(undefined)));
  });
}

function portInUse(port: number, code: string): never {
  const next = port === 65535 ? 8081 : port + 1;
  const why = code === 'EADDRINUSE' ? 'is already in use' : code === 'EACCES' ? 'needs privileges this user does not have' : `cannot be used (${code})`;
  fail(`Port ${port} ${why}: the demo gateway cannot listen on it.\nChoose another port with PORT, for example:\n\n  PORT=${next} npm run demo`);
}

/** One line per gateway log record, instead of pino's JSON. */
class LogLines extends Writable {
  private rest = '';
  override _write(chunk: Buffer, _enc: string, done: () => void): void {
    const lines = (this.rest + chunk.toString('utf8')).split('\n');
    this.rest = lines.pop() ?? '';
    for (const line of lines) if (line) process.stdout.write(format(line) + '\n');
    done();
  }
}

const LEVELS: Record<number, string> = { 10: 'trace', 20: 'debug', 30: 'info', 40: 'warn', 50: 'error', 60: 'fatal' };

function format(line: string): string {
  let rec: Record<string, unknown>;
  try {
    rec = JSON.parse(line) as Record<string, unknown>;
  } catch {
    return line;
  }
  const time = typeof rec.time === 'string' ? rec.time.slice(11, 19) : '';
  const level = LEVELS[Number(rec.level)] ?? String(rec.level);
  const req = rec.req as { method?: string; url?: string } | undefined;
  const res = rec.res as { statusCode?: number } | undefined;
  const parts = [dim(time), `gateway ${level}`, String(rec.msg ?? '')];
  if (req?.method) parts.push(`${req.method} ${req.url}`);
  if (res?.statusCode) parts.push(`→ ${res.statusCode}`);
  if (typeof rec.responseTime === 'number') parts.push(dim(`${rec.responseTime.toFixed(0)} ms`));
  const err = rec.err as { message?: string } | undefined;
  if (err?.message) parts.push(`(${err.message})`);
  return parts.join(' ');
}

async function main(): Promise<void> {
  const port = parsePort(process.env.PORT);
  const busy = await probe(port, HOST);
  if (busy) portInUse(port, busy);

  let demo: Demo;
  try {
    demo = await startDemo({ port, host: HOST, logStream: new LogLines(), env: process.env });
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'EADDRINUSE' || code === 'EACCES') portInUse(port, code);
    fail(`The demo could not start: ${(err as Error).message}`);
  }

  for (const w of demo.warnings) console.warn(w);
  console.log(`
${bold('bff-gateway demo is running')}

  Open          ${bold(demo.url)}
  Sign in with  ${DEV_LOGIN_HINT}

  gateway       ${demo.url}  (config: examples/demo/routes.yaml)
  provider      ${demo.issuer}  (development OpenID provider)
  API           ${demo.apiUrl}  (verifies the bearer token the gateway injects)
  SPA           ${demo.spaUrl}  (static files from examples/demo/spa/)

Press Ctrl-C to stop.
`);

  let stopping = false;
  const stop = (signal: NodeJS.Signals) => {
    if (stopping) return;
    stopping = true;
    console.log(`\n${signal}: stopping the demo…`);
    // Open browser connections may hold the servers up; do not wait for them forever.
    const force = setTimeout(() => {
      demo.gateway.app.server.closeAllConnections();
      console.log('stopped (connections closed)');
      process.exit(0);
    }, 3000);
    force.unref();
    demo.close().then(
      () => {
        clearTimeout(force);
        console.log('stopped');
        process.exit(0);
      },
      (err: Error) => {
        console.error(`error while stopping: ${err.message}`);
        process.exit(1);
      },
    );
  };
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
}

main().catch((err: Error) => fail(`The demo could not start: ${err.stack ?? err.message}`));
