-- An operator's console session belongs to the JWT secret it was signed in under. A
-- fingerprint of that secret is kept with it (an HMAC keyed by the secret, never the secret),
-- and a session whose fingerprint is not the current secret's is over: changing
-- `jwt_secret` ends every operator session, as it invalidates every operator token. Sessions
-- from before this column (NULL) end too: their operator signs in again once.
ALTER TABLE console_sessions ADD COLUMN operator_secret bytea;
