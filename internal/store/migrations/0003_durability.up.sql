-- Durability and recovery: snapshots of the ledger head, the spend totals
-- and every consumer group's offsets (caracal snapshot create|list|restore,
-- caracal replay start --from-snapshot).
CREATE TABLE snapshots (
    id           text PRIMARY KEY CHECK (id ~ '^snap-[0-9]{8}T[0-9]{6}(\.[0-9]+)?Z$'),
    created_at   timestamptz NOT NULL DEFAULT now(),
    -- Ledger entries at the snapshot (ledger_counter.next_seq) and the
    -- latest signed checkpoint (tree_size 0 and empty note when none).
    ledger_size  bigint NOT NULL CHECK (ledger_size >= 0),
    tree_size    bigint NOT NULL CHECK (tree_size >= 0),
    root_hash    bytea,
    checkpoint   text NOT NULL,
    -- The metering topic and the aggregator group whose resume offsets the
    -- spend totals correspond to.
    topic        text NOT NULL,
    aggregator_group text NOT NULL,
    -- [{"root","agent","gran","bucket","micros"}]: committed spend per agent
    -- (with descendants) and bucket, from which every window is summed.
    spend        jsonb NOT NULL,
    -- [{"source":"kafka"|"postgres","group","topic","partition","next"}]
    offsets      jsonb NOT NULL,
    spend_micros bigint NOT NULL,
    entries      bigint NOT NULL
);
CREATE INDEX snapshots_created_idx ON snapshots (created_at DESC);
