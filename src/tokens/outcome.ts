export type TokenSource = 'cache' | 'refresh' | 'client_credentials';

export type TokenErrorCode = 'consent_required' | 'provider_unavailable' | 'provider_error' | 'token_store_unavailable';

/** What acquiring a route's token came to; callers switch on kind. */
export type TokenOutcome =
  | { kind: 'bearer'; token: string; expiresAt: number; source: TokenSource }
  | { kind: 'none' }
  | {
      kind: 'error';
      code: TokenErrorCode;
      /** True when retrying cannot help (invalid_grant): the user must sign in again. */
      fatal: boolean;
      retryAfterSec?: number;
    };

export const bearer = (token: string, expiresAt: number, source: TokenSource): TokenOutcome => ({ kind: 'bearer', token, expiresAt, source });
