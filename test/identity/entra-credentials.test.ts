import t from 'tap';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ClientAssertion, CryptoProvider } from '@azure/msal-node';
import { decodeProtectedHeader, importX509, jwtVerify } from 'jose';
import { createTestPki } from '../helpers/entra-ca.js';
import { FederatedTokenFile, loadCertificateCredential, loadEntraCredential, msalCredentialOptions } from '../../src/identity/entra-credentials.js';
import type { IdentityConfig } from '../../src/config/resolve.js';

const pki = createTestPki();
t.teardown(() => pki.remove());

function identity(extra: Partial<IdentityConfig>): IdentityConfig {
  return {
    provider: 'entra',
    authority: 'https://login.microsoftonline.com/organizations',
    knownAuthorities: [],
    clientId: 'app',
    authMethod: 'private_key_jwt',
    scopes: ['openid'],
    extraAuthorizeParams: {},
    timeoutMs: 5000,
    clockToleranceSec: 30,
    allowInsecureRequests: false,
    ...extra,
  };
}

t.test("the certificate's SHA-256 thumbprint and x5c are derived from the certificate file, as openssl computes them", async (t) => {
  const cred = loadCertificateCredential(pki.clientKeyFile, pki.clientCertFile);
  const fingerprint = execFileSync('openssl', ['x509', '-in', pki.clientCertFile, '-noout', '-fingerprint', '-sha256'], { encoding: 'utf8' });
  t.equal(cred.thumbprintSha256, fingerprint.split('=')[1]!.trim().replace(/:/g, '').toLowerCase());
  const der = execFileSync('openssl', ['x509', '-in', pki.clientCertFile, '-outform', 'DER']);
  t.same(cred.x5cChain, [der.toString('base64')], 'x5c is the base64 DER certificate');
  t.match(cred.x5c, /^-----BEGIN CERTIFICATE-----/);
  t.match(cred.privateKey, /^-----BEGIN PRIVATE KEY-----/, 'the key is handed over as PKCS#8');
  t.equal(cred.publicJwk.kty, 'RSA');
});

t.test('a certificate file with its chain gives x5c leaf first', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'bff-chain-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const file = join(dir, 'chain.pem');
  writeFileSync(file, pki.clientCert + pki.caCert);
  const cred = loadCertificateCredential(pki.clientKeyFile, file);
  t.equal(cred.x5cChain.length, 2);
  t.equal(cred.thumbprintSha256, loadCertificateCredential(pki.clientKeyFile, pki.clientCertFile).thumbprintSha256, 'the thumbprint is the leaf certificate’s');
});

t.test("a private key that is not the certificate's is refused at startup", async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'bff-key-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const serverKey = join(dir, 'server.key');
  writeFileSync(serverKey, pki.serverKey);
  t.throws(() => loadCertificateCredential(serverKey, pki.clientCertFile), /is not the private key of/);
  t.throws(() => loadCertificateCredential(pki.clientCertFile, pki.clientCertFile), /not a PEM private key/);
  t.throws(() => loadCertificateCredential(pki.clientKeyFile, pki.clientKeyFile), /no PEM certificate/);
});

t.test('MSAL signs a client assertion with the derived thumbprint and x5c, verifiable with the certificate', async (t) => {
  const opts = msalCredentialOptions(loadEntraCredential(identity({ clientCertificate: { privateKeyFile: pki.clientKeyFile, certificateFile: pki.clientCertFile } })));
  const cert = opts.clientCertificate!;
  t.notOk(opts.clientSecret);
  const jwt = ClientAssertion.fromCertificateWithSha256Thumbprint(cert.thumbprintSha256!, cert.privateKey, cert.x5c).getJwt(new CryptoProvider(), 'app', 'https://idp.example/token');
  const header = decodeProtectedHeader(jwt);
  t.equal(header['x5t#S256'], Buffer.from(cert.thumbprintSha256!, 'hex').toString('base64url'));
  t.same(header.x5c, loadCertificateCredential(pki.clientKeyFile, pki.clientCertFile).x5cChain);
  // MSAL sets nbf a second after iat: tolerate it.
  const { payload } = await jwtVerify(jwt, await importX509(pki.clientCert, String(header.alg)), { audience: 'https://idp.example/token', issuer: 'app', clockTolerance: 5 });
  t.equal(payload.sub, 'app');
});

t.test('the federated token file is read again when it changes, and only then', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'bff-fed-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const path = join(dir, 'token');
  writeFileSync(path, 'first.token.value\n');
  const cred = loadEntraCredential(identity({ clientAssertionFile: path }));
  t.equal(cred.kind, 'assertionFile');
  const file = (cred as { file: FederatedTokenFile }).file;
  const assertion = msalCredentialOptions(cred).clientAssertion as (c: { clientId: string }) => Promise<string>;
  t.equal(await assertion({ clientId: 'app' }), 'first.token.value', 'trimmed');
  t.equal(await assertion({ clientId: 'app' }), 'first.token.value');
  t.equal(file.reads, 1, 'unchanged: not read again');

  writeFileSync(path, 'second.token.value-longer');
  const later = new Date(Date.now() + 60_000);
  utimesSync(path, later, later);
  t.equal(await assertion({ clientId: 'app' }), 'second.token.value-longer', 'the rotated token');
  t.equal(file.reads, 2);
  t.equal(await assertion({ clientId: 'app' }), 'second.token.value-longer');
  t.equal(file.reads, 2);

  writeFileSync(path, 'third.token.value-same-ln');
  const later2 = new Date(Date.now() + 120_000);
  utimesSync(path, later2, later2);
  t.equal(await assertion({ clientId: 'app' }), 'third.token.value-same-ln', 'a rewrite of the same size is seen through its mtime');
});

t.test('a missing or empty federated token file is refused at startup', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'bff-fed-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  t.throws(() => loadEntraCredential(identity({ clientAssertionFile: join(dir, 'absent') })), /ENOENT/);
  writeFileSync(join(dir, 'empty'), '\n');
  t.throws(() => loadEntraCredential(identity({ clientAssertionFile: join(dir, 'empty') })), /empty/);
});

t.test('a client secret is passed to MSAL as is', async (t) => {
  t.same(msalCredentialOptions(loadEntraCredential(identity({ clientSecret: 's3cret', authMethod: 'client_secret_basic' }))), { clientSecret: 's3cret' });
});
