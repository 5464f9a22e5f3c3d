-- Event pipeline: the ledger (a tamper-evident, append-only log of metering
-- events), its Merkle tree and signed checkpoints, the audit log, and the
-- consumer offsets stored in the same transactions as the rows they produced.

-- The ledger, partitioned by month of the event time for retention. seq is the
-- global order of entries and the index of the entry in the Merkle tree: it is
-- dense (0, 1, 2, ...) because writers take it from ledger_counter while
-- holding its row lock until they commit.
CREATE TABLE ledger (
    seq             bigint NOT NULL CHECK (seq >= 0),
    event_id        uuid NOT NULL,
    ts              timestamptz NOT NULL,
    kind            smallint NOT NULL,
    agent_id        uuid NOT NULL,
    root_id         uuid NOT NULL,
    route           text NOT NULL,
    model           text NOT NULL,
    request_id      text NOT NULL,
    gateway         text NOT NULL,
    input_tokens    bigint NOT NULL,
    output_tokens   bigint NOT NULL,
    cost_micros     bigint NOT NULL,
    reserved_micros bigint NOT NULL,
    currency        char(3) NOT NULL,
    status          int NOT NULL,
    latency_us      bigint NOT NULL,
    pricing         smallint NOT NULL,
    src_partition   int NOT NULL,
    src_offset      bigint NOT NULL,
    inserted_at     timestamptz NOT NULL DEFAULT now()
) PARTITION BY RANGE (ts);
-- A unique index on a partitioned table must include the partition key;
-- uniqueness of seq and event_id alone is kept by ledger_ids.
CREATE UNIQUE INDEX ledger_seq_ts_idx ON ledger (seq, ts);
CREATE INDEX ledger_agent_ts_idx ON ledger (agent_id, ts);
CREATE INDEX ledger_root_ts_idx ON ledger (root_id, ts);

-- One row per entry, written in the same transaction as the ledger row: the
-- global uniqueness of event ids and of seq, and the id -> seq lookup.
CREATE TABLE ledger_ids (
    event_id uuid PRIMARY KEY,
    seq      bigint NOT NULL UNIQUE
);

-- The next seq; writers lock this row from taking their range to commit.
CREATE TABLE ledger_counter (
    id       boolean PRIMARY KEY DEFAULT true CHECK (id),
    next_seq bigint NOT NULL
);
INSERT INTO ledger_counter VALUES (true, 0);

-- ledger_ensure_partitions creates the monthly partitions that cover
-- [from_ts, to_ts] plus `ahead` further months. Writers call it before a
-- batch whose months they have not seen yet.
CREATE FUNCTION ledger_ensure_partitions(from_ts timestamptz, to_ts timestamptz, ahead int DEFAULT 1)
RETURNS int LANGUAGE plpgsql AS $$
DECLARE m timestamptz; last timestamptz; name text; made int := 0;
BEGIN
    PERFORM pg_advisory_xact_lock(7161893265620231170);
    m := date_trunc('month', from_ts AT TIME ZONE 'UTC') AT TIME ZONE 'UTC';
    last := (date_trunc('month', to_ts AT TIME ZONE 'UTC') + make_interval(months => ahead)) AT TIME ZONE 'UTC';
    WHILE m <= last LOOP
        name := 'ledger_y' || to_char(m AT TIME ZONE 'UTC', 'YYYY') || 'm' || to_char(m AT TIME ZONE 'UTC', 'MM');
        IF to_regclass(name) IS NULL THEN
            EXECUTE format('CREATE TABLE %I PARTITION OF ledger FOR VALUES FROM (%L) TO (%L)',
                name, m, ((m AT TIME ZONE 'UTC') + interval '1 month') AT TIME ZONE 'UTC');
            made := made + 1;
        END IF;
        m := ((m AT TIME ZONE 'UTC') + interval '1 month') AT TIME ZONE 'UTC';
    END LOOP;
    RETURN made;
END $$;
SELECT ledger_ensure_partitions(now(), now(), 2);

-- Offsets of the next record to consume, stored by the consumers that keep
-- their own exactly-once state in PostgreSQL (ledger, audit).
CREATE TABLE consumer_offsets (
    group_id    text NOT NULL,
    topic       text NOT NULL,
    partition   int NOT NULL,
    next_offset bigint NOT NULL CHECK (next_offset >= 0),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (group_id, topic, partition)
);

-- The Merkle tree over the ledger as golang.org/x/mod/sumdb/tlog stored
-- hashes, keyed by storage index (tlog.StoredHashIndex).
CREATE TABLE merkle_hashes (
    idx  bigint PRIMARY KEY CHECK (idx >= 0),
    hash bytea NOT NULL CHECK (length(hash) = 32)
);

-- The sealed size of the tree: entries with seq < tree_size are hashed.
CREATE TABLE merkle_head (
    id         boolean PRIMARY KEY DEFAULT true CHECK (id),
    tree_size  bigint NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now()
);
INSERT INTO merkle_head VALUES (true, 0, now());

-- Signed checkpoints: the note text is "<origin>\n<size>\n<base64 root>\n"
-- followed by the Ed25519 signature lines of golang.org/x/mod/sumdb/note.
CREATE TABLE merkle_checkpoints (
    tree_size  bigint PRIMARY KEY CHECK (tree_size > 0),
    root_hash  bytea NOT NULL CHECK (length(root_hash) = 32),
    note       text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);

-- Policy decisions and audit events, append-only.
CREATE TABLE audit_log (
    topic       text NOT NULL,
    partition   int NOT NULL,
    "offset"    bigint NOT NULL,
    event_id    uuid NOT NULL,
    ts          timestamptz NOT NULL,
    type        text NOT NULL,
    agent_id    uuid,
    route       text NOT NULL,
    reason      text NOT NULL,
    status      int NOT NULL,
    client_ip   text NOT NULL,
    key_prefix  text NOT NULL,
    request_id  text NOT NULL,
    gateway     text NOT NULL,
    inserted_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (topic, partition, "offset")
);
CREATE INDEX audit_log_ts_idx ON audit_log (ts);
CREATE INDEX audit_log_agent_ts_idx ON audit_log (agent_id, ts);

CREATE FUNCTION audit_log_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit_log is append-only';
END $$;
CREATE TRIGGER audit_log_append_only BEFORE UPDATE OR DELETE ON audit_log
    FOR EACH ROW EXECUTE FUNCTION audit_log_append_only();
