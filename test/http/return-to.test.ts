import t from 'tap';
import { safeReturnTo } from '../../src/http/return-to.js';

t.test('same-origin relative paths are allowed as they are', async (t) => {
  t.equal(safeReturnTo('/ok'), '/ok');
  t.equal(safeReturnTo('/a?b=c#d'), '/a?b=c#d', 'query and fragment kept');
  t.equal(safeReturnTo('/orders/42?tab=items&sort=desc'), '/orders/42?tab=items&sort=desc');
  t.equal(safeReturnTo('/search?q=%2F%2Fnot-a-host'), '/search?q=%2F%2Fnot-a-host', 'encoded slashes in the query are data, not a host');
  t.equal(safeReturnTo('/caf%C3%A9'), '/caf%C3%A9', 'percent-encoded UTF-8');
});

t.test('no returnTo means the home page', async (t) => {
  t.equal(safeReturnTo(undefined), '/');
  t.equal(safeReturnTo(''), '/');
});

t.test('anything that could lead the browser to another origin is refused', async (t) => {
  const refused = [
    'https://evil.example',
    'https://evil.example/path',
    'http://evil.example',
    '//evil',
    '//evil.example/path',
    '/\\evil',
    '\\\\evil',
    '/%2F%2Fevil',
    '/%2f%2fevil',
    '/%5Cevil',
    '/%5cevil',
    '/%09/evil',
    '/\t/evil',
    '/%0A/evil',
    'https:evil',
    'javascript:alert(1)',
    'JavaScript:alert(1)',
    'data:text/html,<script>alert(1)</script>',
    'evil.example',
    'relative/path',
    ' /ok',
  ];
  for (const value of refused) t.equal(safeReturnTo(value), undefined, `refuses ${JSON.stringify(value)}`);
});

t.test('CR, LF and other control characters are refused, raw or encoded (no header injection)', async (t) => {
  for (const value of ['/a\r\nSet-Cookie: x=1', '/a\nLocation: //evil', '/%0d%0aSet-Cookie:%20x=1', '/a%00b', '/a\u0000b', '/a\u007fb']) {
    t.equal(safeReturnTo(value), undefined, `refuses ${JSON.stringify(value)}`);
  }
});

t.test('an overlong returnTo is refused', async (t) => {
  t.equal(safeReturnTo('/' + 'a'.repeat(2047)), '/' + 'a'.repeat(2047), '2048 characters are fine');
  t.equal(safeReturnTo('/' + 'a'.repeat(2048)), undefined, '2049 characters are not');
});

t.test('values that are not one string are refused', async (t) => {
  t.equal(safeReturnTo(['/a', '/b']), undefined, 'returnTo given twice');
  t.equal(safeReturnTo({ toString: () => '/ok' }), undefined);
  t.equal(safeReturnTo(42), undefined);
  t.equal(safeReturnTo('/%E0%A4%A'), undefined, 'malformed percent-encoding');
});

t.test('non-ASCII characters come back percent-encoded, so the Location header stays valid (bug: the callback answered 500)', async (t) => {
  t.equal(safeReturnTo('/日本?q=é#ü'), '/%E6%97%A5%E6%9C%AC?q=%C3%A9#%C3%BC');
  t.equal(safeReturnTo('/caf%C3%A9'), '/caf%C3%A9', 'already encoded: unchanged');
  t.equal(safeReturnTo('/\uD800'), undefined, 'a lone surrogate cannot be encoded');
  t.equal(safeReturnTo('/\u3000/evil'), '/%E3%80%80/evil', 'a non-ASCII space is encoded, not a way out');
});
