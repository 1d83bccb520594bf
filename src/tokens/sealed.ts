import { createCipheriv, createDecipheriv, createHash, hkdfSync, randomBytes } from 'node:crypto';

interface SealKey {
  id: string;
  key: Buffer;
}

/**
 * AES-256-GCM for entries at rest. The first key seals, every key opens, so keys rotate
 * without losing entries. The entry's own key is the additional data: a sealed value
 * moved under another account's key does not open.
 */
export class Sealer {
  readonly #keys: SealKey[];

  constructor(secrets: readonly string[], purpose: string) {
    if (secrets.length === 0) throw new Error('at least one key is required');
    this.#keys = secrets.map((s) => {
      const key = Buffer.from(hkdfSync('sha256', Buffer.from(s), Buffer.from('bff-gateway'), Buffer.from(purpose), 32));
      return { id: createHash('sha256').update(key).digest('base64url').slice(0, 8), key };
    });
  }

  seal(plaintext: string, aad: string): string {
    const { id, key } = this.#keys[0]!;
    const iv = randomBytes(12);
    const cipher = createCipheriv('aes-256-gcm', key, iv);
    cipher.setAAD(Buffer.from(aad));
    const body = Buffer.concat([cipher.update(plaintext, 'utf8'), cipher.final(), cipher.getAuthTag()]);
    return `v1.${id}.${iv.toString('base64url')}.${body.toString('base64url')}`;
  }

  /** Undefined for anything that does not open with a known key: a miss, never a crash. */
  open(sealed: unknown, aad: string): string | undefined {
    if (typeof sealed !== 'string') return undefined;
    const [v, id, ivText, bodyText] = sealed.split('.');
    if (v !== 'v1' || !ivText || !bodyText) return undefined;
    const key = this.#keys.find((k) => k.id === id);
    if (!key) return undefined;
    const iv = Buffer.from(ivText, 'base64url');
    const body = Buffer.from(bodyText, 'base64url');
    if (iv.length !== 12 || body.length < 16) return undefined;
    try {
      const decipher = createDecipheriv('aes-256-gcm', key.key, iv);
      decipher.setAAD(Buffer.from(aad));
      decipher.setAuthTag(body.subarray(body.length - 16));
      return Buffer.concat([decipher.update(body.subarray(0, body.length - 16)), decipher.final()]).toString('utf8');
    } catch {
      return undefined;
    }
  }
}
