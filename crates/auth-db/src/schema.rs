//! Diesel table definitions, written by hand to match `migrations/sqlite` and
//! `migrations/postgres` (the same columns on both backends).

diesel::table! {
    users (id) {
        id -> Text,
        email -> Text,
        email_canonical -> Text,
        email_verified -> Bool,
        name -> Nullable<Text>,
        avatar_url -> Nullable<Text>,
        roles -> Text,
        password_hash -> Nullable<Text>,
        created_at -> Timestamp,
        updated_at -> Timestamp,
        disabled_at -> Nullable<Timestamp>,
    }
}

diesel::table! {
    sessions (id) {
        id -> Text,
        user_id -> Text,
        created_at -> Timestamp,
        last_used_at -> Timestamp,
        expires_at -> Timestamp,
        revoked_at -> Nullable<Timestamp>,
        ip -> Nullable<Text>,
        user_agent -> Nullable<Text>,
        amr -> Text,
        aal -> Text,
    }
}

diesel::table! {
    refresh_tokens (token_hash) {
        token_hash -> Text,
        session_id -> Text,
        created_at -> Timestamp,
        rotated_at -> Nullable<Timestamp>,
        sealed_successor -> Nullable<Text>,
    }
}

diesel::table! {
    signing_keys (slot) {
        slot -> Text,
        algorithm -> Text,
        private_pem -> Text,
        created_at -> Timestamp,
    }
}

diesel::table! {
    one_time_tokens (token_hash) {
        token_hash -> Text,
        kind -> Text,
        user_id -> Nullable<Text>,
        email -> Text,
        created_at -> Timestamp,
        expires_at -> Timestamp,
        used_at -> Nullable<Timestamp>,
        failed_attempts -> Integer,
        redirect_to -> Nullable<Text>,
    }
}

diesel::table! {
    outbox (id) {
        id -> Text,
        kind -> Text,
        payload -> Nullable<Binary>,
        attempts -> Integer,
        created_at -> Timestamp,
        due_at -> Timestamp,
        leased_until -> Nullable<Timestamp>,
        done_at -> Nullable<Timestamp>,
        dead_at -> Nullable<Timestamp>,
        last_error -> Nullable<Text>,
    }
}

diesel::table! {
    rate_limit_windows (key, window_start) {
        key -> Text,
        window_start -> Timestamp,
        hits -> Integer,
    }
}

diesel::table! {
    login_lockouts (identifier) {
        identifier -> Text,
        failures -> Integer,
        window_started_at -> Timestamp,
        locked_until -> Nullable<Timestamp>,
    }
}

diesel::table! {
    roles (name) {
        name -> Text,
        capabilities -> Text,
        description -> Nullable<Text>,
        built_in -> Bool,
        created_at -> Timestamp,
        updated_at -> Timestamp,
    }
}

diesel::table! {
    audit_log (id) {
        id -> Text,
        at -> Timestamp,
        event_type -> Text,
        actor_id -> Nullable<Text>,
        user_id -> Nullable<Text>,
        session_id -> Nullable<Text>,
        ip -> Nullable<Text>,
        user_agent -> Nullable<Text>,
        detail -> Nullable<Text>,
    }
}

diesel::table! {
    webhook_endpoints (id) {
        id -> Text,
        url -> Text,
        description -> Nullable<Text>,
        event_types -> Text,
        enabled -> Bool,
        secret_sealed -> Text,
        previous_secret_sealed -> Nullable<Text>,
        previous_secret_expires_at -> Nullable<Timestamp>,
        failing_since -> Nullable<Timestamp>,
        disabled_reason -> Nullable<Text>,
        created_at -> Timestamp,
        updated_at -> Timestamp,
    }
}

diesel::table! {
    webhook_deliveries (id) {
        id -> Text,
        endpoint_id -> Text,
        message_id -> Text,
        event_type -> Text,
        attempt -> Integer,
        attempted_at -> Timestamp,
        status_code -> Nullable<Integer>,
        error -> Nullable<Text>,
        succeeded -> Bool,
    }
}

diesel::table! {
    mfa_factors (id) {
        id -> Text,
        user_id -> Text,
        kind -> Text,
        label -> Nullable<Text>,
        secret -> Binary,
        created_at -> Timestamp,
        activated_at -> Nullable<Timestamp>,
        last_used_step -> Nullable<BigInt>,
        last_used_at -> Nullable<Timestamp>,
        lookup_hash -> Nullable<Text>,
    }
}

diesel::table! {
    mfa_recovery_codes (user_id, code_hash) {
        user_id -> Text,
        code_hash -> Text,
        created_at -> Timestamp,
        used_at -> Nullable<Timestamp>,
    }
}

diesel::table! {
    mfa_challenges (token_hash) {
        token_hash -> Text,
        user_id -> Text,
        amr -> Text,
        created_at -> Timestamp,
        expires_at -> Timestamp,
        used_at -> Nullable<Timestamp>,
        failed_attempts -> Integer,
    }
}

diesel::table! {
    passkeys (id) {
        id -> Text,
        user_id -> Text,
        credential_id -> Text,
        credential -> Text,
        counter -> BigInt,
        name -> Nullable<Text>,
        created_at -> Timestamp,
        last_used_at -> Nullable<Timestamp>,
    }
}

diesel::table! {
    passkey_ceremonies (token_hash) {
        token_hash -> Text,
        kind -> Text,
        user_id -> Nullable<Text>,
        state -> Binary,
        created_at -> Timestamp,
        expires_at -> Timestamp,
    }
}

diesel::allow_tables_to_appear_in_same_query!(
    users,
    sessions,
    refresh_tokens,
    signing_keys,
    one_time_tokens,
    outbox,
    rate_limit_windows,
    login_lockouts,
    roles,
    audit_log,
    webhook_endpoints,
    webhook_deliveries,
    mfa_factors,
    mfa_recovery_codes,
    mfa_challenges,
    passkeys,
    passkey_ceremonies,
);

diesel::table! {
    identities (id) {
        id -> Text,
        user_id -> Text,
        provider -> Text,
        subject -> Text,
        email -> Nullable<Text>,
        created_at -> Timestamp,
    }
}

diesel::table! {
    oauth_records (token_hash) {
        token_hash -> Text,
        kind -> Text,
        payload -> Text,
        created_at -> Timestamp,
        expires_at -> Timestamp,
    }
}
