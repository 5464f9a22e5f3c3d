-- The ledger's (root_id, ts) index served no query: `caracal ledger
-- query|summary` filter by agent_id (ledger_agent_ts_idx) and event time,
-- the sealer, verification and proofs read by seq (ledger_seq_ts_idx) and
-- event id (ledger_ids), and recovery sums by source offset over a time
-- window. Every row paid for it on insert (about a sixth of the writer's
-- time in PostgreSQL). Dedupe by event id (ledger_ids primary key), the
-- global uniqueness of seq (ledger_ids.seq) and the offsets stored in the
-- writer's transaction are unchanged.
DROP INDEX IF EXISTS ledger_root_ts_idx;
