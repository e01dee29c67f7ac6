-- Second factors: TOTP factors (secret sealed by the core), recovery codes (SHA-256 hashes
-- only) and the short-lived challenges that a first factor opens for users with MFA.

CREATE TABLE mfa_factors (
    id             TEXT PRIMARY KEY NOT NULL,
    user_id        TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    kind           TEXT NOT NULL,
    label          TEXT NULL,
    -- Sealed (XChaCha20-Poly1305, key id inside) by auth-core's SecretBox.
    secret         BYTEA NOT NULL,
    created_at     TIMESTAMP NOT NULL,
    -- NULL while enrolment waits for the first valid code.
    activated_at   TIMESTAMP NULL,
    -- Last TOTP time step accepted: a code is accepted once (replay refused).
    last_used_step BIGINT NULL,
    last_used_at   TIMESTAMP NULL,
    -- SHA-256 of the phone number of an SMS factor (the number itself is sealed).
    lookup_hash    TEXT NULL
);

CREATE INDEX mfa_factors_user_id_idx ON mfa_factors (user_id);
CREATE INDEX mfa_factors_lookup_hash_idx ON mfa_factors (lookup_hash);
-- At most one active factor of each kind per user, decided by the database.
CREATE UNIQUE INDEX mfa_factors_active_kind_idx ON mfa_factors (user_id, kind)
    WHERE activated_at IS NOT NULL;

CREATE TABLE mfa_recovery_codes (
    user_id    TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    code_hash  TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL,
    used_at    TIMESTAMP NULL,
    PRIMARY KEY (user_id, code_hash)
);

CREATE TABLE mfa_challenges (
    token_hash      TEXT PRIMARY KEY NOT NULL,
    user_id         TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    -- JSON array of the first factor's methods, carried into the session.
    amr             TEXT NOT NULL,
    created_at      TIMESTAMP NOT NULL,
    expires_at      TIMESTAMP NOT NULL,
    used_at         TIMESTAMP NULL,
    failed_attempts INTEGER NOT NULL DEFAULT 0
);

CREATE INDEX mfa_challenges_expires_at_idx ON mfa_challenges (expires_at);

-- Passkeys (WebAuthn credentials): public keys, nothing secret.
CREATE TABLE passkeys (
    id            TEXT PRIMARY KEY NOT NULL,
    user_id       TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    -- base64url of the credential id chosen by the authenticator.
    credential_id TEXT NOT NULL UNIQUE,
    -- The WebAuthn credential as serialised by the adapter (public key, counter, flags).
    credential    TEXT NOT NULL,
    -- Last sign counter accepted: it must move forward (a clone shows as a regression).
    counter       BIGINT NOT NULL,
    name          TEXT NULL,
    created_at    TIMESTAMP NOT NULL,
    last_used_at  TIMESTAMP NULL
);

CREATE INDEX passkeys_user_id_idx ON passkeys (user_id);

-- WebAuthn ceremonies between start and finish: single use, five minutes.
CREATE TABLE passkey_ceremonies (
    token_hash TEXT PRIMARY KEY NOT NULL,
    kind       TEXT NOT NULL,
    user_id    TEXT NULL REFERENCES users (id) ON DELETE CASCADE,
    -- Sealed by auth-core's SecretBox.
    state      BYTEA NOT NULL,
    created_at TIMESTAMP NOT NULL,
    expires_at TIMESTAMP NOT NULL
);

CREATE INDEX passkey_ceremonies_expires_at_idx ON passkey_ceremonies (expires_at);
