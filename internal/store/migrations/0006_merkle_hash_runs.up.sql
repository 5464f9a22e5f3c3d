-- The Merkle tree's stored hashes as runs: a row holds the hashes with
-- storage indexes first_idx, first_idx+1, ... (tlog.StoredHashIndex)
-- concatenated, 32 bytes each. tlog appends stored hashes in index order, so
-- a seal step writes its hashes as one row instead of about two rows per
-- entry. A hash belongs to the run with the greatest first_idx at or below
-- its index. STORAGE EXTERNAL keeps the bytes uncompressed out of line, so
-- substring() reads only the TOAST chunks of the hashes it returns.
CREATE TABLE merkle_hash_runs (
    first_idx bigint PRIMARY KEY CHECK (first_idx >= 0),
    hashes    bytea NOT NULL CHECK (length(hashes) > 0 AND length(hashes) % 32 = 0)
);
ALTER TABLE merkle_hash_runs ALTER COLUMN hashes SET STORAGE EXTERNAL;

-- The stored hashes of a log are the indexes 0 .. count-1 without a gap;
-- anything else is refused rather than moved into runs that would shift
-- hashes to other indexes.
DO $$
DECLARE
    n  bigint;
    lo bigint;
    hi bigint;
BEGIN
    SELECT count(*), min(idx), max(idx) INTO n, lo, hi FROM merkle_hashes;
    IF n > 0 AND (lo <> 0 OR hi <> n - 1) THEN
        RAISE EXCEPTION 'merkle_hashes holds % hashes with indexes % .. %, not 0 .. % without a gap: the stored tree is damaged (run `caracal merkle verify`); refusing to move it into merkle_hash_runs', n, lo, hi, n - 1;
    END IF;
END
$$;

INSERT INTO merkle_hash_runs (first_idx, hashes)
SELECT min(idx), string_agg(hash, ''::bytea ORDER BY idx)
FROM merkle_hashes
GROUP BY idx / 65536;

DROP TABLE merkle_hashes;
