import type { GatewayConfig } from '../config/resolve.js';

/**
 * The one place where session timeouts, refresh-token lifetime and access-token skew meet.
 * The provider's lifetimes are only known once it issues tokens, so what cannot work is
 * reported then, once, naming the config line to change.
 */
export class LifetimeModel {
  readonly #warned = new Set<string>();

  constructor(
    private readonly config: Pick<GatewayConfig, 'session' | 'tokenCache' | 'sourceOf'>,
    private readonly warn: (message: string) => void,
  ) {}

  /** How long before expiry a token of this lifetime is refreshed: never more than half its life. */
  skewFor(lifetimeMs: number): number {
    const skew = this.config.tokenCache.refreshSkewMs;
    if (lifetimeMs > 0 && skew >= lifetimeMs) {
      this.#once('skew', `${this.config.sourceOf(['tokenCache', 'refreshSkew'])} refreshSkew (${skew / 1000}s) is not shorter than the provider's access-token lifetime (${Math.round(lifetimeMs / 1000)}s): using half the lifetime instead, or every request would refresh`);
      return lifetimeMs / 2;
    }
    return skew;
  }

  /** Called when a sign-in or refresh tells the refresh token's lifetime. */
  observeRefreshTokenLifetime(lifetimeMs: number): void {
    if (lifetimeMs > 0 && this.config.session.absoluteMs > lifetimeMs) {
      this.#once('refresh-lifetime', `${this.config.sourceOf(['session', 'absoluteTimeout'])} absoluteTimeout (${this.config.session.absoluteMs / 1000}s) outlives the provider's refresh tokens (${Math.round(lifetimeMs / 1000)}s): late in a session, routes will answer consent_required`);
    }
  }

  #once(key: string, message: string): void {
    if (this.#warned.has(key)) return;
    this.#warned.add(key);
    this.warn(message);
  }
}
