/**
 * The claims an upstream asks for in a `WWW-Authenticate: Bearer error="insufficient_claims",
 * claims="<base64 JSON>"` challenge (continuous access evaluation, step-up), or undefined
 * when the header is no such challenge or the claims are not a JSON object.
 */
export function claimsFromChallenge(header: string | string[] | undefined): string | undefined {
  const value = Array.isArray(header) ? header.join(', ') : header;
  if (!value || !/error\s*=\s*"?insufficient_claims"?/i.test(value)) return undefined;
  const match = /claims\s*=\s*"([^"]+)"/i.exec(value);
  if (!match) return undefined;
  return decodeClaims(match[1]!) === undefined ? undefined : match[1];
}

/** Base64 (or base64url) JSON object claims → their JSON text; undefined when malformed. */
export function decodeClaims(encoded: string): string | undefined {
  if (encoded.length > 4096 || !/^[A-Za-z0-9+/_=-]+$/.test(encoded)) return undefined;
  try {
    const json = Buffer.from(encoded.replace(/-/g, '+').replace(/_/g, '/'), 'base64').toString('utf8');
    const parsed: unknown = JSON.parse(json);
    return parsed && typeof parsed === 'object' && !Array.isArray(parsed) ? JSON.stringify(parsed) : undefined;
  } catch {
    return undefined;
  }
}
