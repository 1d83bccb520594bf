import pino, { type DestinationStream, type Logger, type LoggerOptions } from 'pino';

/**
 * Paths pino blanks out. Tokens are never logged on purpose; this is the net under that
 * rule for anything that ends up in an error object or a header dump.
 */
export const REDACT_PATHS = [
  'req.headers.authorization',
  'req.headers.cookie',
  'req.headers["proxy-authorization"]',
  'res.headers["set-cookie"]',
  'headers.authorization',
  'headers.cookie',
  '*.access_token',
  '*.refresh_token',
  '*.id_token',
  '*.logout_token',
  '*.accessToken',
  '*.refreshToken',
  '*.idToken',
  '*.token',
  '*.client_secret',
  '*.clientSecret',
  '*.code_verifier',
  '*.codeVerifier',
  '*.password',
  'err.cause.cause',
  'err.cause.body',
  'err.response',
];

export function createLogger(opts: { level: string; pretty: boolean }, stream?: DestinationStream): Logger {
  const options: LoggerOptions = {
    level: opts.level,
    redact: { paths: REDACT_PATHS, censor: '[redacted]' },
    base: { service: 'bff-gateway' },
    timestamp: pino.stdTimeFunctions.isoTime,
  };
  if (stream) return pino(options, stream);
  if (opts.pretty) {
    return pino({ ...options, transport: { target: 'pino/file', options: { destination: 1 } } });
  }
  return pino(options);
}
