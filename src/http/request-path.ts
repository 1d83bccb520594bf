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
  // would lose a dot segment after this check.
  // eslint-disable-next-line no-control-regex
  if (/[\\;#\u0000-\u001f\u007f]|\/\/|%(2e|2f|5c|00|3b)/i.test(path)) return false;
  for (const seg of path.split('/')) if (seg === '.' || seg === '..') return false;
  return true;
}
