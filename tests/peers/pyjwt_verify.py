"""Verify an access token with PyJWT, given only the JWK Set.

usage: python pyjwt_verify.py <jwks.json> <issuer> <audience> <token>
Prints {"valid": true, "alg": .., "claims": {..}} or {"valid": false, "error": ".."}.
"""

import json
import sys

import jwt

jwks_path, issuer, audience, token = sys.argv[1:5]
with open(jwks_path, encoding="utf-8") as f:
    jwk_set = jwt.PyJWKSet.from_dict(json.load(f))
try:
    header = jwt.get_unverified_header(token)
    if header.get("typ") != "at+jwt":
        raise jwt.InvalidTokenError(f"typ is {header.get('typ')!r}, not at+jwt")
    key = next(k for k in jwk_set.keys if k.key_id == header.get("kid"))
    claims = jwt.decode(
        token,
        key=key,
        # The key decides the algorithm, never the token.
        algorithms=[key.algorithm_name],
        issuer=issuer,
        audience=audience,
        options={"require": ["exp", "iat", "iss", "aud", "sub"]},
    )
    print(json.dumps({"valid": True, "alg": header["alg"], "claims": claims}))
except (StopIteration, jwt.PyJWTError) as e:
    print(json.dumps({"valid": False, "error": f"{type(e).__name__}: {e}"}))
