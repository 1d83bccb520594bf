import t from 'tap';
import type { FastifyRequest } from 'fastify';
import { SessionCookieReader, type SessionCookieCodec } from '../../src/http/session-cookie.js';

/** A codec whose "encryption" is a prefix, counting what it is asked to decode. */
function countingCodec(): SessionCookieCodec & { decoded: string[] } {
  const decoded: string[] = [];
  return {
    decoded,
    decode(value) {
      decoded.push(value);
      if (!value.startsWith('sealed:')) return null;
      const data = JSON.parse(value.slice('sealed:'.length)) as Record<string, unknown>;
      return { get: (k: string) => data[k] };
    },
    encode: (data) => 'sealed:' + JSON.stringify(data),
  };
}

const request = (cookie?: string) => ({ headers: cookie === undefined ? {} : { cookie } }) as unknown as FastifyRequest;

t.test('the session id comes from the named cookie among others', async (t) => {
  const codec = countingCodec();
  const reader = new SessionCookieReader('bff', codec);
  const value = encodeURIComponent(codec.encode({ s: 'session-1' }));
  t.equal(reader.sessionId(request(`theme=dark; bff=${value}; _ga=GA1.2`)), 'session-1');
  t.same(codec.decoded, [codec.encode({ s: 'session-1' })], 'the cookie value is URL-decoded before it is decrypted');
});

t.test('a Cookie header seen again is not decrypted again', async (t) => {
  const codec = countingCodec();
  const reader = new SessionCookieReader('bff', codec);
  const header = `bff=${encodeURIComponent(codec.encode({ s: 'session-1' }))}`;
  for (let i = 0; i < 5; i++) t.equal(reader.sessionId(request(header)), 'session-1');
  t.equal(codec.decoded.length, 1);
  t.equal(reader.sessionId(request(`${header}; other=1`)), 'session-1', 'another header is decoded on its own');
  t.equal(codec.decoded.length, 2);
});

t.test('no cookie, another cookie, an undecodable cookie or one without an id are no session', async (t) => {
  const codec = countingCodec();
  const reader = new SessionCookieReader('bff', codec);
  t.equal(reader.sessionId(request()), undefined);
  t.equal(reader.sessionId(request('theme=dark')), undefined);
  t.equal(reader.sessionId(request('bff=forged')), undefined);
  t.equal(reader.sessionId(request('bff=forged')), undefined, 'also when remembered');
  t.equal(reader.sessionId(request(`bff=${encodeURIComponent(codec.encode({ b: 'binding-only' }))}`)), undefined);
  t.equal(reader.sessionId(request(`bff=${encodeURIComponent(codec.encode({ s: 42 }))}`)), undefined, 'an id that is not a string');
  t.equal(codec.decoded.length, 3, 'no decryption without the session cookie; the forged header only once');
});

t.test('a very long Cookie header is decoded every time rather than held', async (t) => {
  const codec = countingCodec();
  const reader = new SessionCookieReader('bff', codec);
  const header = `pad=${'x'.repeat(3000)}; bff=${encodeURIComponent(codec.encode({ s: 'session-1' }))}`;
  t.equal(reader.sessionId(request(header)), 'session-1');
  t.equal(reader.sessionId(request(header)), 'session-1');
  t.equal(codec.decoded.length, 2);
});
