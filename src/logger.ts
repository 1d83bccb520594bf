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
    base: { service: 'bff-gateway' },
    // Epoch milliseconds (pino's default): an ISO string costs ~5 µs on every line.
    timestamp: pino.stdTimeFunctions.epochTime,
  };
  if (stream) return pino(options, stream);
  if (opts.pretty) {
    return pino({ ...options, transport: { target: 'pino/file', options: { destination: 1 } } });
  }
  return pino(options, batchedDestination(1));
}

/** Bytes of log lines held before a write; a line waits at most FLUSH_EVERY_MS. */
const LOG_BUFFER_BYTES = 4096;
const FLUSH_EVERY_MS = 250;

/**
 * A file descriptor (standard output in production), written in batches. pino's default
 * destination hands every line to a libuv thread as a write of its own, which under load
 * costs more CPU than the rest of the request's logging (a thread wake-up and a system call
 * per line). Lines are written once 4 KiB are waiting, or after at most 250 ms; pino flushes
 * what is left synchronously at exit.
 */
export function batchedDestination(fd: number): DestinationStream & { flushSync(): void } {
  const dest = pino.destination({ dest: fd, minLength: LOG_BUFFER_BYTES, sync: false });
  const timer = setInterval(() => {
    // `_len` is sonic-boom's count of bytes waiting; when it is gone, flush anyway.
    if ((dest as unknown as { _len?: number })._len !== 0) dest.flush();
  }, FLUSH_EVERY_MS).unref();
  dest.once('close', () => clearInterval(timer));
  return dest;
}
