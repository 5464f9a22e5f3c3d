CREATE INDEX IF NOT EXISTS ledger_root_ts_idx ON ledger (root_id, ts);
