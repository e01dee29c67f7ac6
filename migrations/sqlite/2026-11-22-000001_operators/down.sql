DROP TABLE webhook_deliveries;
DROP TABLE webhook_endpoints;
DROP TABLE audit_log;
ALTER TABLE users DROP COLUMN disabled_at;
DROP TABLE roles;
