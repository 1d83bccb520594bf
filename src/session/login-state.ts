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

  /**
   * Single use: the state is gone after the first take by its own browser. A callback from
   * another browser (another binding) takes nothing, so it cannot spoil the real sign-in.
   */
  async take(state: string, binding: unknown): Promise<LoginState | undefined> {
    const key = LOGIN + state;
    const text = this.sealer.open(await this.store.get<string>(key), key);
    if (text === undefined) return undefined;
    const value = JSON.parse(text) as LoginState;
    if (typeof binding !== 'string' || value.binding !== binding) return undefined;
    if (!(await this.store.delete(key))) return undefined; // a concurrent replay took it first
    return value;
  }
}
