import { Type, type Static } from '@sinclair/typebox';

/**
 * The routes.yaml schema: the single source of truth for the config's types, its
 * validation, the JSON Schema editors use and the README's reference table.
 */

const Duration = (description: string, dflt: string) =>
  Type.String({ pattern: '^[0-9]+(ms|s|m|h|d)$', description, default: dflt });

const Secret = (description: string) => Type.String({ minLength: 1, description });

const SecretOrList = (description: string) =>
  Type.Union([Secret(description), Type.Array(Secret(description), { minItems: 1 })], { description });

const Scopes = (description: string) => Type.Array(Type.String({ minLength: 1, pattern: '^[^\\s]+$' }), { description });

export const Listen = Type.Object(
  {
    host: Type.String({ default: '0.0.0.0', description: 'Address to listen on.' }),
    port: Type.Integer({ minimum: 0, maximum: 65535, default: 8080, description: 'Port to listen on (0 = any free port).' }),
  },
  { additionalProperties: false, description: 'Where the gateway listens.' },
);

export const ClientCertificate = Type.Object(
  {
    privateKeyFile: Type.String({ minLength: 1, description: 'PEM private key file.' }),
    certificateFile: Type.String({ minLength: 1, description: 'PEM certificate file (its SHA-256 thumbprint and x5c are derived).' }),
  },
  { additionalProperties: false, description: 'Client credential as a certificate and key (private_key_jwt).' },
);

export const Identity = Type.Object(
  {
    provider: Type.Union([Type.Literal('oidc'), Type.Literal('entra')], { description: 'Identity back end: oidc (openid-client) or entra (@azure/msal-node).' }),
    issuer: Type.Optional(Type.String({ format: 'uri', description: 'oidc: the issuer; its discovery document is read at startup.' })),
    authority: Type.Optional(Type.String({ format: 'uri', description: 'entra: the authority, e.g. https://login.microsoftonline.com/<tenant-id>.' })),
    knownAuthorities: Type.Optional(Type.Array(Type.String({ minLength: 1 }), { description: 'entra: B2C, CIAM or other non-Microsoft authorities (host[:port]); MSAL then runs in its OIDC protocol mode.' })),
    clientId: Type.String({ minLength: 1, description: 'The client id registered at the provider.' }),
    clientSecret: Type.Optional(Secret('Client secret; use ${OIDC_CLIENT_SECRET} rather than a literal.')),
    clientCertificate: Type.Optional(ClientCertificate),
    clientAssertionFile: Type.Optional(Type.String({ minLength: 1, description: 'entra: a federated token file (e.g. AZURE_FEDERATED_TOKEN_FILE), re-read when it changes.' })),
    tokenEndpointAuthMethod: Type.Optional(
      Type.Union([Type.Literal('client_secret_basic'), Type.Literal('client_secret_post'), Type.Literal('private_key_jwt')], {
        // No schema default: it depends on the credential (resolve.ts), and a filled-in
        // client_secret_basic would refuse a config that has only a clientCertificate.
        description: 'How the gateway authenticates at the token endpoint. Default: client_secret_basic (the OpenID Connect registration default) with clientSecret, private_key_jwt with clientCertificate.',
      }),
    ),
    scopes: Type.Optional(Scopes('Scopes asked for at sign-in.')),
    extraAuthorizeParams: Type.Optional(Type.Record(Type.String(), Type.String(), { description: 'Extra parameters for the authorization request (e.g. prompt: consent).' })),
    timeout: Type.Optional(Duration('Timeout of every call to the provider.', '5s')),
    clockTolerance: Type.Optional(Duration('Clock skew tolerated when validating tokens.', '30s')),
    allowInsecureRequests: Type.Optional(Type.Boolean({ default: false, description: 'Allow an http:// issuer (development only).' })),
  },
  { additionalProperties: false, description: 'The identity provider and the gateway\'s client registration.' },
);

export const Session = Type.Object(
  {
    secret: SecretOrList('At least 32 bytes; a list rotates keys (the first signs, all decrypt).'),
    cookieName: Type.Optional(Type.String({ pattern: '^[A-Za-z0-9_\\-]+$', description: 'Cookie name; default __Host-bff when publicUrl is https, else bff.' })),
    idleTimeout: Type.Optional(Duration('Session ends after this long without a request (sliding).', '30m')),
    absoluteTimeout: Type.Optional(Duration('Session ends this long after sign-in, whatever happens.', '12h')),
  },
  { additionalProperties: false, description: 'The browser session (an encrypted HttpOnly cookie holding only an id).' },
);

export const TokenCacheConfig = Type.Object(
  {
    url: Type.Optional(Type.String({ pattern: '^(memory|redis|rediss)://', default: 'memory://', description: 'memory:// or redis://host:6379/0, rediss://…' })),
    encryptionKey: SecretOrList('Key for AES-256-GCM encryption of entries at rest; a list rotates keys (the first encrypts, all decrypt).'),
    refreshSkew: Type.Optional(Duration('Refresh an access token this long before it expires.', '60s')),
  },
  { additionalProperties: false, description: 'Where account tokens and server-side sessions are kept.' },
);

export const Route = Type.Object(
  {
    name: Type.Optional(Type.String({ pattern: '^[A-Za-z0-9_.\\-]+$', description: 'Used in logs and metrics (default: the prefix).' })),
    prefix: Type.String({ pattern: '^/', description: 'Path prefix; the longest matching prefix wins.' }),
    upstream: Type.String({ pattern: '^(http|https|ws|wss)://', description: 'Upstream base URL.' }),
    rewritePrefix: Type.Optional(Type.String({ description: 'Replaces the prefix in the upstream path.' })),
    auth: Type.Union([Type.Literal('user'), Type.Literal('client'), Type.Literal('user-or-client'), Type.Literal('none')], { description: 'Which token to inject: user | client | user-or-client | none.' }),
    scopes: Type.Optional(Scopes('Scopes of the token this route gets.')),
    resource: Type.Optional(Type.String({ format: 'uri', description: 'RFC 8707 resource indicator, for providers that issue one token per resource.' })),
    csrfHeader: Type.Optional(Type.String({ pattern: '^[A-Za-z0-9\\-]+$', default: 'X-CSRF', description: 'Header an API route requires (value 1), or "" to turn the check off.' })),
    methods: Type.Optional(Type.Array(Type.String({ pattern: '^[A-Z]+$' }), { description: 'Allowed methods; others get 405.' })),
    websocket: Type.Optional(Type.Boolean({ default: false, description: 'Proxy WebSocket upgrades (with the token).' })),
    timeout: Type.Optional(Duration('Upstream response timeout.', '30s')),
  },
  { additionalProperties: false },
);

export const Logging = Type.Object(
  {
    level: Type.Optional(Type.Union(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'].map((l) => Type.Literal(l)), { default: 'info', description: 'Log level (LOG_LEVEL overrides).' })),
    pretty: Type.Optional(Type.Boolean({ default: false, description: 'Human-readable logs (development).' })),
    accessLog: Type.Optional(
      Type.Boolean({ default: true, description: 'One info line per request. Off when an ingress already logs requests: metrics, warnings and errors stay.' }),
    ),
  },
  { additionalProperties: false, description: 'pino logging.' },
);

export const Config = Type.Object(
  {
    listen: Type.Optional(Listen),
    publicUrl: Type.String({ pattern: '^https?://[^/?#]+/?$', description: 'Origin as the browser sees it; the callback is publicUrl + /auth/callback.' }),
    trustProxy: Type.Optional(Type.Boolean({ default: false, description: 'Trust X-Forwarded-* (only behind an ingress that sets them).' })),
    postLogoutRedirectUri: Type.Optional(Type.String({ description: 'Where the provider sends the browser after sign-out (default publicUrl).' })),
    shutdownGracePeriod: Type.Optional(Duration('How long in-flight requests may finish after SIGTERM.', '25s')),
    logging: Type.Optional(Logging),
    metrics: Type.Optional(
      Type.Object(
        { port: Type.Optional(Type.Integer({ minimum: 0, maximum: 65535, description: 'Serve /metrics on this separate port instead of the main one.' })) },
        { additionalProperties: false, description: 'Prometheus metrics.' },
      ),
    ),
    identity: Identity,
    session: Session,
    tokenCache: TokenCacheConfig,
    routes: Type.Array(Route, { minItems: 1, description: 'Proxied routes.' }),
  },
  { additionalProperties: false, $id: 'https://bff-gateway.dev/schema/routes.json', title: 'bff-gateway routes.yaml' },
);

export type ConfigInput = Static<typeof Config>;
export type RouteInput = Static<typeof Route>;
export type IdentityInput = Static<typeof Identity>;
export type AuthMode = RouteInput['auth'];

