DROP TABLE passkey_ceremonies;
DROP TABLE passkeys;
DROP TABLE mfa_challenges;
DROP TABLE mfa_recovery_codes;
DROP TABLE mfa_factors;
