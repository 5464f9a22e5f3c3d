-- One row per stored hash again (as 0002 created it).
CREATE TABLE merkle_hashes (
    idx  bigint PRIMARY KEY CHECK (idx >= 0),
    hash bytea NOT NULL CHECK (length(hash) = 32)
);
INSERT INTO merkle_hashes (idx, hash)
SELECT r.first_idx + k, substring(r.hashes FROM k * 32 + 1 FOR 32)
FROM merkle_hash_runs r, generate_series(0, length(r.hashes) / 32 - 1) AS k;
DROP TABLE merkle_hash_runs;
