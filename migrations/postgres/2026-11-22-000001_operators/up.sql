-- Roles and capabilities, disabled accounts, and the audit trail.

-- A role is a named set of capabilities (JSON array of strings). Users name their roles in
-- users.roles (JSON array), which access tokens carry.
CREATE TABLE roles (
    name         TEXT PRIMARY KEY NOT NULL,
    capabilities TEXT NOT NULL DEFAULT '[]',
    description  TEXT NULL,
    built_in     BOOLEAN NOT NULL DEFAULT false,
    created_at   TIMESTAMP NOT NULL,
    updated_at   TIMESTAMP NOT NULL
);

-- The built-in administrator role: every capability, including application-defined ones.
INSERT INTO roles (name, capabilities, description, built_in, created_at, updated_at)
VALUES ('admin',
        '["users:read","users:write","sessions:revoke","roles:manage","audit:read","webhooks:manage"]',
        'Every capability', true, (now() AT TIME ZONE 'utc'), (now() AT TIME ZONE 'utc'));

-- A disabled user cannot sign in; set by an administrator.
ALTER TABLE users ADD COLUMN disabled_at TIMESTAMP NULL;

-- Security events. No foreign key to users: rows outlive the accounts they name (a
-- deleted user's rows keep only the id). Never a password, token or code.
CREATE TABLE audit_log (
    id         TEXT PRIMARY KEY NOT NULL,
    at         TIMESTAMP NOT NULL,
    event_type TEXT NOT NULL,
    actor_id   TEXT NULL,
    user_id    TEXT NULL,
    session_id TEXT NULL,
    ip         TEXT NULL,
    user_agent TEXT NULL,
    detail     TEXT NULL
);

CREATE INDEX audit_log_at_idx ON audit_log (at, id);
CREATE INDEX audit_log_user_at_idx ON audit_log (user_id, at);

-- Webhook endpoints. The signing secret is sealed (the server needs it to sign); during a
-- rotation the previous one signs too until previous_secret_expires_at.
CREATE TABLE webhook_endpoints (
    id                         TEXT PRIMARY KEY NOT NULL,
    url                        TEXT NOT NULL,
    description                TEXT NULL,
    event_types                TEXT NOT NULL DEFAULT '[]',
    enabled                    BOOLEAN NOT NULL DEFAULT true,
    secret_sealed              TEXT NOT NULL,
    previous_secret_sealed     TEXT NULL,
    previous_secret_expires_at TIMESTAMP NULL,
    failing_since              TIMESTAMP NULL,
    disabled_reason            TEXT NULL,
    created_at                 TIMESTAMP NOT NULL,
    updated_at                 TIMESTAMP NOT NULL
);

-- One row per delivery attempt.
CREATE TABLE webhook_deliveries (
    id           TEXT PRIMARY KEY NOT NULL,
    endpoint_id  TEXT NOT NULL REFERENCES webhook_endpoints (id) ON DELETE CASCADE,
    message_id   TEXT NOT NULL,
    event_type   TEXT NOT NULL,
    attempt      INTEGER NOT NULL,
    attempted_at TIMESTAMP NOT NULL,
    status_code  INTEGER NULL,
    error        TEXT NULL,
    succeeded    BOOLEAN NOT NULL
);

CREATE INDEX webhook_deliveries_endpoint_idx ON webhook_deliveries (endpoint_id, attempted_at);
