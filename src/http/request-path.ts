/** Anything in a path that makes it not plain (see isPlainPath). */
// eslint-disable-next-line no-control-regex
const UNPLAIN = /[\\;#\u0000-\u001f\u007f]|\/\/|%(?:2e|2f|5c|00|3b)|\/\.\.?(?:\/|$)/i;

/**
 * True when a request path can be matched and forwarded as it stands: no dot segments,
 * no encoded slashes, dots, backslashes or NULs, no `//`, no `;` path parameters, no `#`. Upstreams
 * and routers disagree about such paths; refusing them keeps one route from reaching
 * another route's upstream or token.
 */
export function isPlainPath(url: string): boolean {
  const q = url.indexOf('?');
  const path = q === -1 ? url : url.slice(0, q);
  if (path.length === 0 || path[0] !== '/') return false;
  // `#` never belongs in a request target: URL parsers cut the path there, so `/api/.#`
  // would lose a dot segment after this check. The path starts with `/`, so every segment
  // follows one: `/./` and `/../` (or either at the end) are the dot segments.
  return !UNPLAIN.test(path);
}
