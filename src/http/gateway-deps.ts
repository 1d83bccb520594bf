import type { GatewayConfig } from '../config/resolve.js';
import type { IdentityBackend } from '../identity/types.js';
import type { LoginStateStore } from '../session/login-state.js';
import type { SessionStore } from '../session/sessions.js';
import type { TokenService } from '../tokens/acquire.js';
import type { Store } from '../tokens/store.js';
import type { GatewayMetrics } from './metrics.js';

/** What the HTTP layer is given; server.ts builds it. */
export interface GatewayDeps {
  config: GatewayConfig;
  identity: IdentityBackend;
  store: Store;
  tokens: TokenService;
  sessions: SessionStore;
  loginStates: LoginStateStore;
  metrics: GatewayMetrics;
  /** Back-channel logout jti replay guard. */
  seenLogoutToken(jti: string): Promise<boolean>;
}
