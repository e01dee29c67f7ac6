-- One-time tokens (email verification, password reset, magic link, email code) and the
-- durable outbox of work to carry out after a state change (mail to send ...).
-- Tokens are stored only as SHA-256 hashes; outbox payloads are sealed by the core.

CREATE TABLE one_time_tokens (
    token_hash      TEXT PRIMARY KEY NOT NULL,
    kind            TEXT NOT NULL,
    user_id         TEXT NULL REFERENCES users (id) ON DELETE CASCADE,
    email           TEXT NOT NULL,
    created_at      TIMESTAMP NOT NULL,
    expires_at      TIMESTAMP NOT NULL,
    used_at         TIMESTAMP NULL,
    failed_attempts INTEGER NOT NULL DEFAULT 0,
    redirect_to     TEXT NULL
);

-- Issuing retires the unused tokens of a kind for an email; the current one is looked up
-- the same way.
CREATE INDEX one_time_tokens_kind_email_idx ON one_time_tokens (kind, email);
-- Password changes retire a user's reset tokens; deleting a user cascades.
CREATE INDEX one_time_tokens_user_id_idx ON one_time_tokens (user_id);

CREATE TABLE outbox (
    id           TEXT PRIMARY KEY NOT NULL,
    kind         TEXT NOT NULL,
    -- NULL once done or dead: a sealed payload is kept no longer than needed.
    payload      BYTEA NULL,
    attempts     INTEGER NOT NULL DEFAULT 0,
    created_at   TIMESTAMP NOT NULL,
    due_at       TIMESTAMP NOT NULL,
    leased_until TIMESTAMP NULL,
    done_at      TIMESTAMP NULL,
    dead_at      TIMESTAMP NULL,
    last_error   TEXT NULL
);

-- The claim query: pending entries, oldest due first.
CREATE INDEX outbox_pending_due_idx ON outbox (due_at, created_at, id)
    WHERE done_at IS NULL AND dead_at IS NULL;
