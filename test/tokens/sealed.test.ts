import t from 'tap';
import { Sealer } from '../../src/tokens/sealed.js';

const OLD = 'old-cache-key-0123456789abcdef-0123456789';
const NEW = 'new-cache-key-0123456789abcdef-0123456789';
const AAD = 'acct:account-a';

/** Replaces the character at `i` with a different one of the base64url alphabet. */
function flip(text: string, i: number): string {
  const c = text[i] === 'A' ? 'B' : 'A';
  return text.slice(0, i) + c + text.slice(i + 1);
}

t.test('a sealed value opens to the same text', async (t) => {
  const sealer = new Sealer([NEW], 'token-cache');
  for (const text of ['', 'refresh-token', JSON.stringify({ refreshToken: 'r', tokens: { 'api.read': { accessToken: 'a', expiresAt: 1 } } }), 'caf\u00e9 \u{1F511}', 'x'.repeat(100_000)]) {
    const sealed = sealer.seal(text, AAD);
    t.equal(sealer.open(sealed, AAD), text);
  }
});

t.test('the sealed form does not contain the plaintext, and sealing twice gives two different values', async (t) => {
  const sealer = new Sealer([NEW], 'token-cache');
  const a = sealer.seal('refresh-token-value', AAD);
  const b = sealer.seal('refresh-token-value', AAD);
  t.notMatch(a, 'refresh-token-value');
  t.notMatch(a, Buffer.from('refresh-token-value').toString('base64url'));
  t.not(a, b, 'a fresh IV each time');
  t.equal(sealer.open(b, AAD), 'refresh-token-value');
});

t.test('a value sealed with another key is a miss, not a throw', async (t) => {
  const sealed = new Sealer([OLD], 'token-cache').seal('secret', AAD);
  t.equal(new Sealer([NEW], 'token-cache').open(sealed, AAD), undefined);
  t.equal(new Sealer([OLD], 'sessions').open(sealed, AAD), undefined, 'same secret, other purpose: another key');
});

t.test('a value moved under another entry key is a miss (the entry key is the additional data)', async (t) => {
  const sealer = new Sealer([NEW], 'token-cache');
  const sealed = sealer.seal('alice tokens', 'acct:alice');
  t.equal(sealer.open(sealed, 'acct:mallory'), undefined);
  t.equal(sealer.open(sealed, ''), undefined);
  t.equal(sealer.open(sealed, 'acct:alice'), 'alice tokens', 'still opens under its own key');
});

t.test('a tampered value is a miss', async (t) => {
  const sealer = new Sealer([NEW], 'token-cache');
  const sealed = sealer.seal('{"refreshToken":"r"}', AAD);
  const [v, id, iv, body] = sealed.split('.') as [string, string, string, string];
  t.equal(sealer.open(`${v}.${id}.${flip(iv, 3)}.${body}`, AAD), undefined, 'IV changed');
  t.equal(sealer.open(`${v}.${id}.${iv}.${flip(body, 2)}`, AAD), undefined, 'ciphertext changed');
  t.equal(sealer.open(`${v}.${id}.${iv}.${flip(body, body.length - 6)}`, AAD), undefined, 'tag changed');
  t.equal(sealer.open(`${v}.${id}.${iv}.${body.slice(0, -4)}`, AAD), undefined, 'truncated');
  t.equal(sealer.open(`${v}.${id}.${iv}.${body}AAAA`, AAD), undefined, 'extended');
  t.equal(sealer.open(`v2.${id}.${iv}.${body}`, AAD), undefined, 'other version');
  t.equal(sealer.open(`${v}.${flip(id, 0)}.${iv}.${body}`, AAD), undefined, 'other key id');
});

t.test('key rotation: a value sealed with the old key opens with [new, old], and new values use the new key', async (t) => {
  const before = new Sealer([OLD], 'token-cache');
  const after = new Sealer([NEW, OLD], 'token-cache');
  const oldValue = before.seal('sealed before the rotation', AAD);
  t.equal(after.open(oldValue, AAD), 'sealed before the rotation');
  const newValue = after.seal('sealed after the rotation', AAD);
  t.equal(new Sealer([NEW], 'token-cache').open(newValue, AAD), 'sealed after the rotation', 'the first key seals');
  t.equal(before.open(newValue, AAD), undefined, 'a replica that only has the old key cannot read it');
  t.equal(new Sealer([NEW], 'token-cache').open(oldValue, AAD), undefined, 'once the old key is removed, its values are misses');
});

t.test('garbage input is a miss, never a throw', async (t) => {
  const sealer = new Sealer([NEW], 'token-cache');
  const id = sealer.seal('x', AAD).split('.')[1]!;
  const garbage: unknown[] = [
    undefined,
    null,
    42,
    {},
    ['v1', id],
    Buffer.from('v1'),
    '',
    'v1',
    'v1.',
    'v1...',
    `v1.${id}`,
    `v1.${id}.`,
    `v1.${id}..`,
    `v1.${id}.AAAA.AAAA`,
    `v1.${id}.AAAAAAAAAAAAAAAA.AAAA`,
    `v1.${id}.AAAAAAAAAAAAAAAA.${'A'.repeat(22)}`,
    `v1.${id}.!!!!.@@@@`,
    `v1.${id}.${'A'.repeat(16)}.${'A'.repeat(40)}.extra`,
    'not sealed at all',
    '{"refreshToken":"plaintext from an old version"}',
  ];
  for (const value of garbage) t.equal(sealer.open(value, AAD), undefined, `miss for ${JSON.stringify(value)}`);
});

t.test('a Sealer needs at least one key', async (t) => {
  t.throws(() => new Sealer([], 'token-cache'), /at least one key/);
});
