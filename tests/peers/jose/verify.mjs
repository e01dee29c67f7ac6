// Verify an access token with `jose`, given only the JWK Set.
// usage: node verify.mjs <jwks.json> <issuer> <audience> <token>
// Prints {"valid": true, "alg": .., "claims": {..}} or {"valid": false, "error": ".."}.
import { readFileSync } from "node:fs";
import { createLocalJWKSet, jwtVerify } from "jose";

const [jwksPath, issuer, audience, token] = process.argv.slice(2);
const jwks = createLocalJWKSet(JSON.parse(readFileSync(jwksPath, "utf8")));
try {
  const { payload, protectedHeader } = await jwtVerify(token, jwks, {
    issuer,
    audience,
    typ: "at+jwt",
    algorithms: ["EdDSA", "Ed25519", "ES256", "RS256"],
  });
  console.log(JSON.stringify({ valid: true, alg: protectedHeader.alg, claims: payload }));
} catch (e) {
  console.log(JSON.stringify({ valid: false, error: `${e.code ?? e.name}: ${e.message}` }));
}
