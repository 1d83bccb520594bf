/**
 * The client credential of the Entra back end, in the shapes @azure/msal-node takes:
 * a secret, a certificate (its SHA-256 thumbprint and x5c derived from the certificate
 * file, never typed by the user) or a federated token file read through a
 * `clientAssertion` callback that re-reads the file only when it changes.
 */
import { createHash, createPrivateKey, X509Certificate } from 'node:crypto';
import { readFileSync, statSync } from 'node:fs';
import type { NodeAuthOptions } from '@azure/msal-node';
import type { IdentityConfig } from '../config/resolve.js';

export interface CertificateCredential {
  /** Hex SHA-256 of the DER certificate (MSAL's `thumbprintSha256`, sent as `x5t#S256`). */
  thumbprintSha256: string;
  /** PKCS#8 PEM of the private key. */
  privateKey: string;
  /** The PEM certificates (leaf first) MSAL puts into the assertion's `x5c` header. */
  x5c: string;
  /** base64 DER of each certificate, as the `x5c` header carries them. */
  x5cChain: string[];
  /** The leaf certificate's public key as a JWK (for registering it at a provider). */
  publicJwk: Record<string, unknown>;
}

const PEM_CERT = /-----BEGIN CERTIFICATE-----\r?\n[\s\S]+?\r?\n-----END CERTIFICATE-----/g;

/**
 * Reads a PEM private key and a PEM certificate (optionally followed by its chain) and
 * derives what MSAL needs. Throws a plain Error naming the file when either is unusable.
 */
export function loadCertificateCredential(privateKeyFile: string, certificateFile: string): CertificateCredential {
  const certText = readFileSync(certificateFile, 'utf8');
  const pems = certText.match(PEM_CERT) ?? [];
  if (pems.length === 0) throw new Error(`${certificateFile}: no PEM certificate found`);
  const certs = pems.map((pem) => new X509Certificate(pem));
  const leaf = certs[0]!;
  let key;
  try {
    key = createPrivateKey(readFileSync(privateKeyFile, 'utf8'));
  } catch (err) {
    throw new Error(`${privateKeyFile}: not a PEM private key (${(err as Error).message})`);
  }
  if (key.asymmetricKeyType !== 'rsa') {
    // MSAL signs client assertions with PS256 (RS256 for SHA-1 thumbprints): RSA only.
    throw new Error(`${privateKeyFile}: MSAL signs client assertions with RSA; the key is ${key.asymmetricKeyType}`);
  }
  if (!leaf.checkPrivateKey(key)) throw new Error(`${privateKeyFile} is not the private key of ${certificateFile}`);
  const publicJwk = leaf.publicKey.export({ format: 'jwk' }) as Record<string, unknown>;
  return {
    thumbprintSha256: createHash('sha256').update(leaf.raw).digest('hex'),
    privateKey: key.export({ type: 'pkcs8', format: 'pem' }).toString(),
    x5c: pems.join('\n'),
    x5cChain: certs.map((c) => c.raw.toString('base64')),
    publicJwk,
  };
}

/**
 * A federated token file (Kubernetes projected service account token, AKS workload
 * identity's AZURE_FEDERATED_TOKEN_FILE): the kubelet rewrites it before the token
 * expires, so it is read again whenever its mtime or size changes, and only then.
 */
export class FederatedTokenFile {
  #cached?: { mtimeMs: number; size: number; token: string };
  /** How many times the file was actually read (tests). */
  reads = 0;

  constructor(readonly path: string) {}

  read(): string {
    const st = statSync(this.path);
    const c = this.#cached;
    if (c && c.mtimeMs === st.mtimeMs && c.size === st.size) return c.token;
    const token = readFileSync(this.path, 'utf8').trim();
    this.reads++;
    if (!token) throw new Error(`${this.path}: the federated token file is empty`);
    this.#cached = { mtimeMs: st.mtimeMs, size: st.size, token };
    return token;
  }
}

export type EntraCredential =
  | { kind: 'secret'; secret: string }
  | { kind: 'certificate'; certificate: CertificateCredential }
  | { kind: 'assertionFile'; file: FederatedTokenFile };

/** Loads the one credential the config names (resolve.ts already enforces exactly one). */
export function loadEntraCredential(cfg: IdentityConfig): EntraCredential {
  if (cfg.clientCertificate) return { kind: 'certificate', certificate: loadCertificateCredential(cfg.clientCertificate.privateKeyFile, cfg.clientCertificate.certificateFile) };
  if (cfg.clientAssertionFile) {
    const file = new FederatedTokenFile(cfg.clientAssertionFile);
    file.read(); // fail at startup, not at the first sign-in
    return { kind: 'assertionFile', file };
  }
  if (cfg.clientSecret) return { kind: 'secret', secret: cfg.clientSecret };
  throw new Error('identity: exactly one client credential is required');
}

/** The credential part of MSAL's `auth` options. */
export function msalCredentialOptions(credential: EntraCredential): Pick<NodeAuthOptions, 'clientSecret' | 'clientCertificate' | 'clientAssertion'> {
  switch (credential.kind) {
    case 'secret':
      return { clientSecret: credential.secret };
    case 'certificate':
      return {
        clientCertificate: {
          thumbprintSha256: credential.certificate.thumbprintSha256,
          privateKey: credential.certificate.privateKey,
          x5c: credential.certificate.x5c,
        },
      };
    case 'assertionFile': {
      const file = credential.file;
      return { clientAssertion: async () => file.read() };
    }
  }
}
