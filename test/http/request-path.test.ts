import t from 'tap';
import { isPlainPath } from '../../src/http/request-path.js';

t.test('normal paths are allowed', async (t) => {
  for (const path of ['/', '/api', '/api/orders', '/api/orders/42', '/api/orders?x=1', '/api/file.tar.gz', '/api/a..b', '/api/.well-known/x', '/api/.x', '/api/..x', '/api/x.', '/api/x..', '/api/caf%C3%A9', '/api/a%20b', '/api?next=/a/../b', '/api?u=//x;y=%2f']) {
    t.equal(isPlainPath(path), true, `allows ${path}`);
  }
});

t.test('dot segments are refused, raw or encoded', async (t) => {
  for (const path of ['/api/../admin', '/api/..', '/..', '/api/./orders', '/api/.', '/api/./', '/api/../', '/./api', '/.', '/api/%2e%2e/admin', '/api/%2E%2E/admin', '/api/.%2e/admin', '/api/%2e./admin', '/api/%2e/orders']) {
    t.equal(isPlainPath(path), false, `refuses ${path}`);
  }
});

t.test('encoded slashes and backslashes, raw backslashes and empty segments are refused', async (t) => {
  for (const path of ['/api%2fadmin', '/api/a%2Fb', '/api%5cadmin', '/api/a%5Cb', '/api\\admin', '/api//admin', '//api', '/api/orders//']) {
    t.equal(isPlainPath(path), false, `refuses ${path}`);
  }
});

t.test('path parameters, NULs and control characters are refused', async (t) => {
  for (const path of ['/api;jsessionid=1', '/api/orders;x', '/api/%3B', '/api/%00', '/api/a\u0000', '/api/a\tb', '/api/a\u007f']) {
    t.equal(isPlainPath(path), false, `refuses ${JSON.stringify(path)}`);
  }
});

t.test('something that is not an absolute path is refused', async (t) => {
  for (const path of ['', '*', 'api/orders', 'http://evil.example/api', '?x=1']) t.equal(isPlainPath(path), false, `refuses ${JSON.stringify(path)}`);
});
