-- Abuse protection shared by every node: fixed-window rate-limit counters and login
-- failures/locks per identifier (a canonical email, known or not).

CREATE TABLE rate_limit_windows (
    key          TEXT NOT NULL,
    window_start TIMESTAMP NOT NULL,
    hits         INTEGER NOT NULL,
    PRIMARY KEY (key, window_start)
);

-- Purging old windows.
CREATE INDEX rate_limit_windows_window_start_idx ON rate_limit_windows (window_start);

CREATE TABLE login_lockouts (
    identifier        TEXT PRIMARY KEY NOT NULL,
    failures          INTEGER NOT NULL,
    window_started_at TIMESTAMP NOT NULL,
    locked_until      TIMESTAMP NULL
);
