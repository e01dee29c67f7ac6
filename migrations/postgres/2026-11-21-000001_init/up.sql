-- Users, sessions, refresh tokens and the server-generated signing key.
-- Identifiers are UUID strings; timestamps are UTC without a zone; JSON arrays are TEXT.

CREATE TABLE users (
    id              TEXT PRIMARY KEY NOT NULL,
    email           TEXT NOT NULL,
    email_canonical TEXT NOT NULL UNIQUE,
    email_verified  BOOLEAN NOT NULL DEFAULT false,
    name            TEXT NULL,
    avatar_url      TEXT NULL,
    roles           TEXT NOT NULL DEFAULT '[]',
    password_hash   TEXT NULL,
    created_at      TIMESTAMP NOT NULL,
    updated_at      TIMESTAMP NOT NULL
);

CREATE TABLE sessions (
    id           TEXT PRIMARY KEY NOT NULL,
    user_id      TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at   TIMESTAMP NOT NULL,
    last_used_at TIMESTAMP NOT NULL,
    expires_at   TIMESTAMP NOT NULL,
    revoked_at   TIMESTAMP NULL,
    ip           TEXT NULL,
    user_agent   TEXT NULL,
    amr          TEXT NOT NULL DEFAULT '[]',
    aal          TEXT NOT NULL
);

CREATE INDEX sessions_user_id_idx ON sessions (user_id);

CREATE TABLE refresh_tokens (
    token_hash       TEXT PRIMARY KEY NOT NULL,
    session_id       TEXT NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
    created_at       TIMESTAMP NOT NULL,
    rotated_at       TIMESTAMP NULL,
    sealed_successor TEXT NULL
);

CREATE INDEX refresh_tokens_session_id_idx ON refresh_tokens (session_id);

CREATE TABLE signing_keys (
    slot        TEXT PRIMARY KEY NOT NULL,
    algorithm   TEXT NOT NULL,
    private_pem TEXT NOT NULL,
    created_at  TIMESTAMP NOT NULL
);
