DROP TABLE login_lockouts;
DROP TABLE rate_limit_windows;
