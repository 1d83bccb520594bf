/**
 * A private certificate authority for tests that need an https provider (MSAL refuses
 * http authorities): a CA, a server certificate for 127.0.0.1 signed by it, and a
 * self-signed client certificate for the certificate credential. Made with openssl.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface TestPki {
  dir: string;
  caCertFile: string;
  caCert: string;
  serverKey: string;
  serverCert: string;
  clientKeyFile: string;
  clientCertFile: string;
  clientKey: string;
  clientCert: string;
  remove(): void;
}

function openssl(args: string[], cwd: string): void {
  execFileSync('openssl', args, { cwd, stdio: ['ignore', 'ignore', 'pipe'] });
}

export function createTestPki(): TestPki {
  const dir = mkdtempSync(join(tmpdir(), 'bff-entra-pki-'));
  openssl(['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', 'ca.key', '-out', 'ca.crt', '-days', '2', '-subj', '/CN=bff-gateway test CA', '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign'], dir);
  openssl(['req', '-newkey', 'rsa:2048', '-nodes', '-keyout', 'server.key', '-out', 'server.csr', '-subj', '/CN=127.0.0.1'], dir);
  writeFileSync(join(dir, 'server.ext'), 'subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n');
  openssl(['x509', '-req', '-in', 'server.csr', '-CA', 'ca.crt', '-CAkey', 'ca.key', '-CAcreateserial', '-out', 'server.crt', '-days', '2', '-extfile', 'server.ext'], dir);
  openssl(['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', 'client.key', '-out', 'client.crt', '-days', '2', '-subj', '/CN=bff-gateway test client'], dir);
  const read = (name: string) => readFileSync(join(dir, name), 'utf8');
  return {
    dir,
    caCertFile: join(dir, 'ca.crt'),
    caCert: read('ca.crt'),
    serverKey: read('server.key'),
    serverCert: read('server.crt'),
    clientKeyFile: join(dir, 'client.key'),
    clientCertFile: join(dir, 'client.crt'),
    clientKey: read('client.key'),
    clientCert: read('client.crt'),
    remove() {
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
