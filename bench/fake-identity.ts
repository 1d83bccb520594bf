import { randomBytes } from 'node:crypto';
import type { IdentityBackend, TokenGrant } from '../src/identity/types.js';

/** Sizes of what a real sign-in stores, as the dev provider issues them (RS256 JWTs). */
export const FAKE_SIZES = { idToken: 900, refreshToken: 43, accessToken: 750 };

export const b64 = (chars: number) => randomBytes(Math.ceil((chars * 3) / 4)).toString('base64url').slice(0, chars);

/** Stands in for the provider in accounts mode: refresh answers at once, nothing else is used. */
export function fakeIdentity(issuer: string): IdentityBackend {
  const no = () => Promise.reject(new Error('not used by the benchmark'));
  return {
    issuer,
    init: async () => undefined,
    ready: () => true,
    signInUrl: no,
    redeemCode: no,
    async refresh(): Promise<TokenGrant> {
      return { accessToken: b64(FAKE_SIZES.accessToken), refreshToken: b64(FAKE_SIZES.refreshToken), expiresAt: Date.now() + 3600_000 };
    },
    clientCredentials: no,
    revoke: async () => false,
    logoutUrl: () => undefined,
    verifyLogoutToken: no,
  };
}
