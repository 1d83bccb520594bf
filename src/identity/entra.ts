import type { IdentityConfig } from '../config/resolve.js';
import type { PartitionStore } from './types.js';

/** Placeholder until the MSAL back end lands: refuses to start rather than pretend. */
export class EntraBackend {
  constructor(_cfg: IdentityConfig, _partitions: PartitionStore | undefined) {
    throw new Error('identity.provider entra is not available in this build');
  }
}
