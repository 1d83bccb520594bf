import { randomBytes } from 'node:crypto';
import type { Sealer } from '../tokens/sealed.js';
import type { Store } from '../tokens/store.js';

/** The transient state of one sign-in, kept server-side so a flood of logins cannot grow the cookie. */
export interface LoginState {
  /** Random id held in the browser's cookie: the state is only redeemable from that browser. */
  binding: string;
  nonce: string;
  codeVerifier: string;
  returnTo: string;
  scopes: string[];
}

const LOGIN = 'login:';
export const LOGIN_STATE_TTL_MS = 10 * 60_000;

export function newBinding(): string {
  return randomBytes(16).toString('base64url');
}

export class LoginStateStore {
  constructor(
    private readonly store: Store,
    private readonly sealer: Sealer,
  ) {}

  async save(state: string, value: LoginState): Promise<void> {
    const key = LOGIN + state;
    await this.store.set(key, this.sealer.seal(JSON.stringify(value), key), LOGIN_STATE_TTL_MS);
  }

  /** Single use: the state is gone after the first take, whatever its outcome. */
  async take(state: string): Promise<LoginState | undefined> {
    const key = LOGIN + state;
    const sealed = await this.store.get<string>(key);
    if (sealed === undefined) return undefined;
    if (!(await this.store.delete(key))) return undefined; // a concurrent replay took it first
    const text = this.sealer.open(sealed, key);
    return text === undefined ? undefined : (JSON.parse(text) as LoginState);
  }
}
