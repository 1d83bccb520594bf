const MAX_RETURN_TO = 2048;
const PROBE = 'http://return-to.invalid';

/**
 * A same-origin relative path to send the browser back to, or undefined when the value
 * could lead anywhere else (absolute URLs, `//host`, `/\host`, encoded or control-character
 * variants that browsers normalise into those).
 */
export function safeReturnTo(value: unknown): string | undefined {
  if (value === undefined || value === '') return '/';
  if (typeof value !== 'string' || value.length > MAX_RETURN_TO) return undefined;
  if (!isSafeRelative(value)) return undefined;
  let decoded: string;
  try {
    decoded = decodeURIComponent(value);
  } catch {
    return undefined;
  }
  if (decoded !== value && !isSafeRelative(decoded)) return undefined;
  // Non-ASCII percent-encoded, as a browser would: raw, it makes the Location header invalid.
  try {
    return value.replace(/[^\u0000-\u007f]+/g, (s) => encodeURIComponent(s));
  } catch {
    return undefined; // a lone surrogate
  }
}

function isSafeRelative(v: string): boolean {
  if (!v.startsWith('/') || v.startsWith('//') || v.includes('\\')) return false;
  // eslint-disable-next-line no-control-regex
  if (/[\u0000-\u001f\u007f]/.test(v)) return false;
  try {
    return new URL(v, PROBE).origin === PROBE;
  } catch {
    return false;
  }
}
