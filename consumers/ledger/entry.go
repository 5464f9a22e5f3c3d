// Package ledger is the LedgerWriter (metering events -> PostgreSQL, exactly
// once) and the tamper-evident log over it: golang.org/x/mod/sumdb/tlog
// hashes of a canonical encoding of each entry, stored hashes in PostgreSQL,
// one sealer at a time extending the tree, and checkpoints signed as
// golang.org/x/mod/sumdb/note with Ed25519. docs/ledger.md describes it.
package ledger

import (
	"encoding/binary"
	"fmt"
	"time"

	"golang.org/x/mod/sumdb/tlog"

	"github.com/caracal-gw/caracal/internal/event"
)

// Entry is what the log covers of one ledger row.
type Entry struct {
	Seq            int64
	EventID        event.ID
	TimeUnixUs     int64
	Kind           event.Kind
	Agent          event.UUID
	Root           event.UUID
	Route          string
	Model          string
	InputTokens    int64
	OutputTokens   int64
	CostMicros     int64
	ReservedMicros int64
	Currency       [3]byte
	Status         int
}

// EncodingVersion is the first byte of the canonical encoding.
const EncodingVersion = 1

// AppendCanonical appends the canonical encoding of e, the bytes the record
// hash covers (docs/ledger.md): integers are big-endian, strings are a
// 4-byte big-endian length and their bytes.
//
//	version u8 (1) | seq u64 | event id [16] | time µs i64 | kind u8 |
//	agent [16] | root [16] | route | model | input tokens i64 |
//	output tokens i64 | cost µ i64 | reserved µ i64 | currency [3] | status u32
func (e *Entry) AppendCanonical(dst []byte) []byte {
	dst = append(dst, EncodingVersion)
	dst = binary.BigEndian.AppendUint64(dst, uint64(e.Seq))
	dst = append(dst, e.EventID[:]...)
	dst = binary.BigEndian.AppendUint64(dst, uint64(e.TimeUnixUs))
	dst = append(dst, byte(e.Kind))
	dst = append(dst, e.Agent[:]...)
	dst = append(dst, e.Root[:]...)
	dst = appendString(dst, e.Route)
	dst = appendString(dst, e.Model)
	dst = binary.BigEndian.AppendUint64(dst, uint64(e.InputTokens))
	dst = binary.BigEndian.AppendUint64(dst, uint64(e.OutputTokens))
	dst = binary.BigEndian.AppendUint64(dst, uint64(e.CostMicros))
	dst = binary.BigEndian.AppendUint64(dst, uint64(e.ReservedMicros))
	dst = append(dst, e.Currency[:]...)
	return binary.BigEndian.AppendUint32(dst, uint32(e.Status))
}

func appendString(dst []byte, s string) []byte {
	dst = binary.BigEndian.AppendUint32(dst, uint32(len(s)))
	return append(dst, s...)
}

// RecordHash is the tlog leaf hash of e's canonical encoding; buf is scratch.
func (e *Entry) RecordHash(buf []byte) (tlog.Hash, []byte) {
	buf = e.AppendCanonical(buf[:0])
	return tlog.RecordHash(buf), buf
}

// Time is the event time.
func (e *Entry) Time() time.Time { return time.UnixMicro(e.TimeUnixUs).UTC() }

// entryColumns are the ledger columns read into an Entry, in scan order.
const entryColumns = `seq, event_id, ts, kind, agent_id, root_id, route, model, input_tokens, output_tokens, cost_micros, reserved_micros, currency, status`

// entryScanner scans rows of entryColumns into e without allocating per row
// beyond the two strings.
type entryScanner struct {
	e        Entry
	id, a, r [16]byte
	ts       time.Time
	kind     int16
	cur      string
	dest     []any
}

func newEntryScanner() *entryScanner {
	s := &entryScanner{}
	s.dest = []any{&s.e.Seq, &s.id, &s.ts, &s.kind, &s.a, &s.r, &s.e.Route, &s.e.Model,
		&s.e.InputTokens, &s.e.OutputTokens, &s.e.CostMicros, &s.e.ReservedMicros, &s.cur, &s.e.Status}
	return s
}

func (s *entryScanner) finish() error {
	s.e.EventID, s.e.Agent, s.e.Root = event.ID(s.id), event.UUID(s.a), event.UUID(s.r)
	s.e.TimeUnixUs, s.e.Kind = s.ts.UnixMicro(), event.Kind(s.kind)
	if len(s.cur) != 3 {
		return fmt.Errorf("entry %d: currency %q is not three letters", s.e.Seq, s.cur)
	}
	copy(s.e.Currency[:], s.cur)
	return nil
}
