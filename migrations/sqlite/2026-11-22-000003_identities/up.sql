-- External identities (social and OpenID Connect sign-in), keyed by (provider, subject),
-- and the single-use records of the browser redirect flow (state, one-time code).

CREATE TABLE identities (
    id         TEXT PRIMARY KEY NOT NULL,
    user_id    TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    provider   TEXT NOT NULL,
    subject    TEXT NOT NULL,
    email      TEXT NULL,
    created_at TIMESTAMP NOT NULL,
    UNIQUE (provider, subject)
);

CREATE INDEX identities_user_id_idx ON identities (user_id);

-- Handles are stored as SHA-256 hashes; payloads are sealed (they hold the PKCE verifier).
CREATE TABLE oauth_records (
    token_hash TEXT PRIMARY KEY NOT NULL,
    kind       TEXT NOT NULL,
    payload    TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL,
    expires_at TIMESTAMP NOT NULL
);

CREATE INDEX oauth_records_expires_at_idx ON oauth_records (expires_at);
