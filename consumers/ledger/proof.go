package ledger

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/caracal-gw/caracal/internal/event"
)

// EntryJSON is the readable form of an Entry in a proof.
type EntryJSON struct {
	Seq            int64  `json:"seq"`
	EventID        string `json:"event_id"`
	TimeUnixUs     int64  `json:"ts_us"`
	Kind           uint8  `json:"kind"`
	Agent          string `json:"agent"`
	Root           string `json:"root"`
	Route          string `json:"route"`
	Model          string `json:"model"`
	InputTokens    int64  `json:"input_tokens"`
	OutputTokens   int64  `json:"output_tokens"`
	CostMicros     int64  `json:"cost_micros"`
	ReservedMicros int64  `json:"reserved_micros"`
	Currency       string `json:"currency"`
	Status         int    `json:"status"`
}

// JSON returns the readable form of e.
func (e *Entry) JSON() EntryJSON {
	return EntryJSON{Seq: e.Seq, EventID: e.EventID.String(), TimeUnixUs: e.TimeUnixUs, Kind: uint8(e.Kind),
		Agent: e.Agent.String(), Root: e.Root.String(), Route: e.Route, Model: e.Model,
		InputTokens: e.InputTokens, OutputTokens: e.OutputTokens, CostMicros: e.CostMicros,
		ReservedMicros: e.ReservedMicros, Currency: string(e.Currency[:]), Status: e.Status}
}

// Entry parses the readable form back.
func (j *EntryJSON) Entry() (Entry, error) {
	e := Entry{Seq: j.Seq, TimeUnixUs: j.TimeUnixUs, Kind: event.Kind(j.Kind), Route: j.Route, Model: j.Model,
		InputTokens: j.InputTokens, OutputTokens: j.OutputTokens, CostMicros: j.CostMicros,
		ReservedMicros: j.ReservedMicros, Status: j.Status}
	var err error
	if e.EventID, err = event.ParseID([]byte(j.EventID)); err != nil {
		return e, fmt.Errorf("event_id: %w", err)
	}
	if e.Agent, err = event.ParseUUID([]byte(j.Agent)); err != nil {
		return e, fmt.Errorf("agent: %w", err)
	}
	if e.Root, err = event.ParseUUID([]byte(j.Root)); err != nil {
		return e, fmt.Errorf("root: %w", err)
	}
	if len(j.Currency) != 3 {
		return e, errors.New("currency must have three letters")
	}
	copy(e.Currency[:], j.Currency)
	return e, nil
}

// Proof is an inclusion proof of one entry in a signed checkpoint; it checks
// offline with the verifier key alone (CheckProof).
type Proof struct {
	Entry      EntryJSON   `json:"entry"`
	RecordHash tlog.Hash   `json:"record_hash"`
	Index      int64       `json:"index"`
	TreeSize   int64       `json:"tree_size"`
	Proof      []tlog.Hash `json:"proof"`
	Checkpoint string      `json:"checkpoint"`
}

// Prove builds the inclusion proof of the entry with event id in the latest
// checkpoint that covers it.
func Prove(ctx context.Context, pool *pgxpool.Pool, id event.ID) (*Proof, error) {
	var seq int64
	if err := pool.QueryRow(ctx, `SELECT seq FROM ledger_ids WHERE event_id = $1`, [16]byte(id)).Scan(&seq); err != nil {
		if errors.Is(err, pgx.ErrNoRows) {
			return nil, fmt.Errorf("event %s is not in the ledger", id)
		}
		return nil, fmt.Errorf("cannot look up event %s: %w", id, err)
	}
	var cp storedCheckpoint
	err := pool.QueryRow(ctx, `SELECT tree_size, root_hash, note FROM merkle_checkpoints WHERE tree_size > $1 ORDER BY tree_size DESC LIMIT 1`, seq).Scan(&cp.Size, &cp.Root, &cp.Note)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, fmt.Errorf("event %s (entry %d) is not under a checkpoint yet", id, seq)
	}
	if err != nil {
		return nil, fmt.Errorf("cannot read the checkpoint: %w", err)
	}
	sc := newEntryScanner()
	if err := pool.QueryRow(ctx, `SELECT `+entryColumns+` FROM ledger WHERE seq = $1`, seq).Scan(sc.dest...); err != nil {
		return nil, fmt.Errorf("cannot read entry %d: %w", seq, err)
	}
	if err := sc.finish(); err != nil {
		return nil, err
	}
	h, _ := sc.e.RecordHash(nil)
	rp, err := tlog.ProveRecord(cp.Size, seq, dbReader{ctx: ctx, q: pool})
	if err != nil {
		return nil, fmt.Errorf("cannot prove entry %d: %w", seq, err)
	}
	return &Proof{Entry: sc.e.JSON(), RecordHash: h, Index: seq, TreeSize: cp.Size, Proof: rp, Checkpoint: cp.Note}, nil
}

// CheckProof verifies a proof file offline: the checkpoint signature with v,
// the record hash of the entry as written, and the inclusion proof.
func CheckProof(data []byte, v note.Verifier) (*Proof, error) {
	var p Proof
	if err := json.Unmarshal(data, &p); err != nil {
		return nil, fmt.Errorf("cannot parse the proof: %w", err)
	}
	c, err := OpenCheckpoint(p.Checkpoint, v)
	if err != nil {
		return nil, err
	}
	if c.Size != p.TreeSize || p.Index != p.Entry.Seq || p.Index < 0 || p.Index >= c.Size {
		return nil, fmt.Errorf("proof index %d, entry %d and checkpoint size %d disagree", p.Index, p.Entry.Seq, c.Size)
	}
	e, err := p.Entry.Entry()
	if err != nil {
		return nil, fmt.Errorf("bad entry in the proof: %w", err)
	}
	if h, _ := e.RecordHash(nil); h != p.RecordHash {
		return nil, errors.New("the entry does not match the record hash")
	}
	if err := tlog.CheckRecord(tlog.RecordProof(p.Proof), c.Size, c.Root, p.Index, p.RecordHash); err != nil {
		return nil, fmt.Errorf("the inclusion proof does not verify: %w", err)
	}
	return &p, nil
}

// VerifySample checks k random sealed entries against their stored record
// hashes and the latest checkpoint's signature and root against the stored
// tree; a problem is counted in caracal_merkle_verification_failures_total.
func VerifySample(ctx context.Context, pool DB, v note.Verifier, k int) (*Problem, error) {
	p, err := verifySample(ctx, pool, v, k)
	if p != nil {
		VerificationFailures.Inc()
	}
	return p, err
}

func verifySample(ctx context.Context, pool DB, v note.Verifier, k int) (*Problem, error) {
	rows, err := pool.Query(ctx, `SELECT `+entryColumns+` FROM ledger
		WHERE seq IN (SELECT (random() * (tree_size - 1))::bigint FROM merkle_head, generate_series(1, $1) WHERE tree_size > 0)`, k)
	if err != nil {
		return nil, fmt.Errorf("cannot sample ledger entries: %w", err)
	}
	sc := newEntryScanner()
	type sample struct {
		e Entry
		h tlog.Hash
	}
	var got []sample
	for rows.Next() {
		if err := rows.Scan(sc.dest...); err != nil {
			rows.Close()
			return nil, fmt.Errorf("cannot sample ledger entries: %w", err)
		}
		if err := sc.finish(); err != nil {
			rows.Close()
			return nil, err
		}
		h, _ := sc.e.RecordHash(nil)
		got = append(got, sample{sc.e, h})
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("cannot sample ledger entries: %w", err)
	}
	idx := make([]int64, len(got))
	for i, s := range got {
		idx[i] = tlog.StoredHashIndex(0, s.e.Seq)
	}
	stored, err := readHashes(ctx, pool, idx)
	if err != nil {
		return nil, err
	}
	for i, s := range got {
		if stored[idx[i]] != s.h {
			return &Problem{Seq: s.e.Seq, EventID: s.e.EventID, Event: s.e.EventID.String(), Reason: "the entry does not match its stored record hash"}, nil
		}
	}
	var cp storedCheckpoint
	err = pool.QueryRow(ctx, `SELECT tree_size, root_hash, note FROM merkle_checkpoints ORDER BY tree_size DESC LIMIT 1`).Scan(&cp.Size, &cp.Root, &cp.Note)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("cannot read the latest checkpoint: %w", err)
	}
	bad := &Problem{Seq: cp.Size - 1}
	c, err := OpenCheckpoint(cp.Note, v)
	if err != nil {
		bad.Reason = err.Error()
		return bad, nil
	}
	root, err := tlog.TreeHash(cp.Size, dbReader{ctx: ctx, q: pool})
	if err != nil {
		return nil, fmt.Errorf("cannot compute the root of %d entries: %w", cp.Size, err)
	}
	if c.Size != cp.Size || c.Root != root || tlog.Hash(cp.Root) != root {
		bad.Reason = fmt.Sprintf("checkpoint of size %d does not match the stored tree", cp.Size)
		return bad, nil
	}
	return nil, nil
}
