DROP TABLE oauth_records;
DROP TABLE identities;
