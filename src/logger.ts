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
  return pino(options);
}
