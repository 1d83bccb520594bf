import pino, { type DestinationStream, type Logger, type LoggerOptions } from 'pino';

/**
 * Paths pino blanks out. Tokens are never logged on purpose (log calls name the fields they
 * write); this is the net under that rule for header dumps and library errors. Explicit
 * paths only: pino's wildcard paths cost more per log line than the rest of the line.
 */
export const REDACT_PATHS = [
  'req.headers.authorization',
  'req.headers.cookie',
  'req.headers["proxy-authorization"]',
  'res.headers["set-cookie"]',
  'headers.authorization',
  'headers.cookie',
  'err.cause',
  'err.response',
  'err.body',
];

const SERVICE = 'bff-gateway';

export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;

export function createLogger(opts: { level: string; pretty: boolean }, stream?: DestinationStream): Logger {
  // LOG_LEVEL bypasses the config schema: say what is wrong rather than pino's
  // "default level:… must be included in custom levels".
  const level = opts.level.toLowerCase();
  if (!(LOG_LEVELS as readonly string[]).includes(level)) {
    throw new Error(`log level "${opts.level}" (LOG_LEVEL or logging.level) is not one of ${LOG_LEVELS.join(', ')}`);
  }
  const options: LoggerOptions = {
    level,
    redact: { paths: REDACT_PATHS, censor: '[redacted]' },
    base: { service: SERVICE },
    // Epoch milliseconds (pino's default): an ISO string costs ~5 µs on every line.
    timestamp: pino.stdTimeFunctions.epochTime,
  };
  if (stream) return pino(options, stream);
  if (opts.pretty) {
    return pino({ ...options, transport: { target: 'pino/file', options: { destination: 1 } } });
  }
  return pino(options, new BatchedLines(1));
}

/** Writes one access line: request id, method, URL (its query string is left out), route, status, milliseconds. */
export type AccessLogWriter = (reqId: string, method: string, url: string, route: string, status: number, ms: number) => void;

/**
 * Writes the one line per request, in pino's own format (level, time, service, fields, msg)
 * and to the logger's destination, but without pino's per-call work: a child logger per
 * request and its bindings, redaction and generic serialisation cost several times what this
 * fixed line needs (its fields hold no secrets; the path has no query string, which carries
 * codes and state). Undefined when the logger's level is above info.
 */
export function accessLogWriter(logger: Logger): AccessLogWriter | undefined {
  if (!logger.isLevelEnabled('info')) return undefined;
  const stream = (logger as unknown as Record<symbol, DestinationStream>)[pino.symbols.streamSym]!;
  const head = `{"level":${logger.levels.values.info},"time":`;
  const service = `,"service":${JSON.stringify(SERVICE)},"reqId":`;
  return (reqId, method, url, route, status, ms) => {
    const q = url.indexOf('?');
    // Node's parser accepts only the registered method names: the method needs no escaping.
    stream.write(
      `${head}${Date.now()}${service}${JSON.stringify(reqId)},"method":"${method}","path":${JSON.stringify(q === -1 ? url : url.slice(0, q))},"route":${JSON.stringify(route)},"status":${status},"ms":${ms},"msg":"request"}\n`,
    );
  };
}

/** Bytes of log lines joined into one write; a line waits at most FLUSH_EVERY_MS. */
const BATCH_BYTES = 16 * 1024;
const FLUSH_EVERY_MS = 250;

const open = new Set<BatchedLines>();
let exitHookInstalled = false;

/**
 * A file descriptor (standard output in production) for pino, written in batches of whole
 * lines. pino's default destination makes a write system call per line, and sonic-boom's
 * own `minLength` buffering measures its growing buffer string on every line; under load
 * either costs more CPU than the rest of the request's logging. Here lines are collected in
 * an array and joined into one write once 16 KiB are waiting, or after at most 250 ms.
 * Writes are synchronous, as pino's default destination's are: handing each batch to a
 * libuv thread instead measured two to three times the CPU per batch (a thread wake-up and
 * a copy of the string). At exit (crash included) what is left is written at once.
 */
export class BatchedLines implements DestinationStream {
  #lines: string[] = [];
  #bytes = 0;
  readonly #out: ReturnType<typeof pino.destination>;
  readonly #timer: NodeJS.Timeout;

  constructor(fd: number) {
    this.#out = pino.destination({ dest: fd, sync: true });
    this.#timer = setInterval(() => this.flush(), FLUSH_EVERY_MS).unref();
    open.add(this);
    if (!exitHookInstalled) {
      exitHookInstalled = true;
      // Ahead of pino's own exit hook, which ends the destination after flushing it.
      process.prependListener('exit', () => {
        for (const batch of open) batch.flushSync();
      });
    }
  }

  write(line: string): void {
    this.#lines.push(line);
    this.#bytes += line.length;
    if (this.#bytes >= BATCH_BYTES) this.flush();
  }

  /** Writes what is waiting; pino's `logger.flush(cb)` lands here. */
  flush(cb?: (err?: Error) => void): void {
    if (this.#lines.length > 0) {
      const chunk = this.#lines.join('');
      this.#lines = [];
      this.#bytes = 0;
      this.#out.write(chunk);
    }
    if (cb) this.#out.flush(cb);
  }

  /** Writes everything now, on this thread. */
  flushSync(): void {
    this.flush();
    try {
      this.#out.flushSync();
    } catch {
      // Not open yet, or already closed: nothing more can be written.
    }
  }

  close(): void {
    this.flushSync();
    clearInterval(this.#timer);
    open.delete(this);
  }
}
