// node-oidc-provider 9.13.3, set up as the peer `scripts/bench-compare` measures oxid against: its
// in-memory adapter, devInteractions (a login form taking any password, then a consent form),
// client_credentials, one RS256 key, default refresh-token settings, and one client like oxid-bench's.
//
// Usage: PORT=3000 node server.mjs
import { generateKeyPairSync } from 'node:crypto';

import Provider from 'oidc-provider';

const port = Number(process.env.PORT || 3000);
const issuer = `http://127.0.0.1:${port}`;

const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
const signingKey = { ...privateKey.export({ format: 'jwk' }), kid: 'bench-rs256', alg: 'RS256', use: 'sig' };

const provider = new Provider(issuer, {
  clients: [
    {
      client_id: process.env.CLIENT_ID || 'bench',
      client_secret: process.env.CLIENT_SECRET || 'bench-client-secret-0123456789abcdef',
      grant_types: ['authorization_code', 'refresh_token', 'client_credentials'],
      response_types: ['code'],
      redirect_uris: ['http://127.0.0.1:9/cb'],
      scope: 'openid offline_access email',
    },
  ],
  jwks: { keys: [signingKey] },
  claims: { openid: ['sub'], email: ['email', 'email_verified'] },
  // Any login is an account whose email is what oxid-bench's user has.
  async findAccount(ctx, id) {
    return { accountId: id, claims: async () => ({ sub: id, email: `${id}@example.com`, email_verified: true }) };
  },
  cookies: { keys: ['bench-peer-cookie-key-0123456789abcdef'] },
  features: {
    devInteractions: { enabled: true },
    clientCredentials: { enabled: true },
  },
});

provider.listen(port, '127.0.0.1', () => {
  console.log(`node-oidc-provider listening on ${issuer}`);
});
