// Package spool is the gateway's local append-only disk spool: records that
// could not go to Kafka (brokers gone, producer buffer full) and strict-mode
// intents are appended to segment files with a length and a CRC32C per
// record, made durable by one fsync per group of appends, and read back at
// start. The producer drains it oldest-first and deletes a segment once every
// record in it is acknowledged by Kafka. A torn or corrupt record ends its
// segment's valid part: it is counted and logged, never replayed.
package spool

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// ErrFull is returned by Append when the spool is at its size cap.
var ErrFull = errors.New("spool is full")

// ErrClosed is returned by Append after Close.
var ErrClosed = errors.New("spool is closed")

// Options configure a Spool.
type Options struct {
	// Dir holds the segment files; created when missing.
	Dir string
	// MaxBytes caps the bytes on disk plus those waiting to be written.
	MaxBytes int64
	// SegmentBytes: the active segment is sealed once it reaches this size.
	SegmentBytes int64
	// NoSync skips fsync (benchmarks of the framing only; never in a gateway).
	NoSync bool
	Logger *slog.Logger
}

func (o *Options) validate() error {
	if o.Dir == "" {
		return errors.New("spool: Dir is empty")
	}
	if o.MaxBytes <= 0 {
		o.MaxBytes = 1 << 30
	}
	if o.SegmentBytes <= 0 {
		o.SegmentBytes = 16 << 20
	}
	if o.SegmentBytes > o.MaxBytes {
		o.SegmentBytes = o.MaxBytes
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	return nil
}

// DefaultDir is $TMPDIR/caracal-spool-<owner>.
func DefaultDir(owner string) string {
	return filepath.Join(os.TempDir(), "caracal-spool-"+owner)
}

// Segment is one segment file.
type Segment struct {
	Seq  uint64
	Path string
	// Records is the number of valid records; Corrupt whether a torn or
	// corrupt tail follows them.
	Records int
	Corrupt bool
	size    int64
	valid   int64
	oldest  int64
	pins    int
	sealed  bool
	// Produced is set by the drainer once every record was acknowledged; a
	// pinned segment stays until its pins are gone.
	Produced bool
}

// batch is a group of appends written and synced together. A batch is not
// reused while appenders still wait on it, so they can read seq and err.
type batch struct {
	buf      []byte
	n        int
	pins     int
	waiters  int
	finished bool
	seq      uint64
	err      error
}

// Spool is safe for concurrent use.
type Spool struct {
	opt Options

	mu      sync.Mutex
	work    sync.Cond // the writer waits for appends
	done    sync.Cond // appenders wait for their batch; the writer for a free batch
	pending *batch
	spare   *batch
	closed  bool
	writing bool

	segs    []*Segment // oldest first; the last one is active when active != nil
	active  *os.File
	nextSeq uint64
	// bytes: on disk + pending; changed under mu, read without it.
	bytes   atomic.Int64
	records int64
	// reserved: bytes set aside by Reserve for records appended later with
	// AppendReserved (the metering events of requests in flight).
	reserved atomic.Int64

	wg   sync.WaitGroup
	lock *os.File
}

// Open reads back the segments in opt.Dir (counting torn or corrupt tails)
// and starts the writer. New appends always go to a new segment.
func Open(opt Options) (*Spool, error) {
	if err := opt.validate(); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(opt.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("cannot create spool directory %s: %w", opt.Dir, err)
	}
	s := &Spool{opt: opt, pending: &batch{buf: make([]byte, 0, 64<<10)}, spare: &batch{buf: make([]byte, 0, 64<<10)}}
	s.work.L, s.done.L = &s.mu, &s.mu
	lock, err := lockDir(opt.Dir)
	if err != nil {
		return nil, err
	}
	s.lock = lock
	if err := s.load(); err != nil {
		lock.Close()
		return nil, err
	}
	register(s)
	s.wg.Add(1)
	go s.writer()
	return s, nil
}

const segPrefix, segSuffix = "seg-", ".spool"

func segName(seq uint64) string { return fmt.Sprintf("%s%020d%s", segPrefix, seq, segSuffix) }

func (s *Spool) load() error {
	ents, err := os.ReadDir(s.opt.Dir)
	if err != nil {
		return fmt.Errorf("cannot read spool directory %s: %w", s.opt.Dir, err)
	}
	var buf []byte
	for _, e := range ents {
		name := e.Name()
		if !strings.HasPrefix(name, segPrefix) || !strings.HasSuffix(name, segSuffix) {
			continue
		}
		seq, err := strconv.ParseUint(strings.TrimSuffix(strings.TrimPrefix(name, segPrefix), segSuffix), 10, 64)
		if err != nil {
			continue
		}
		seg := &Segment{Seq: seq, Path: filepath.Join(s.opt.Dir, name), sealed: true}
		if _, err := os.Stat(seg.Path + producedSuffix); err == nil {
			seg.Produced = true
		}
		if buf, err = s.scan(seg, buf); err != nil {
			return err
		}
		s.segs = append(s.segs, seg)
		s.bytes.Add(seg.size)
		s.records += int64(seg.Records)
		s.nextSeq = max(s.nextSeq, seq+1)
	}
	sort.Slice(s.segs, func(i, j int) bool { return s.segs[i].Seq < s.segs[j].Seq })
	return nil
}

// scan counts the valid records of seg and reports a torn or corrupt tail.
func (s *Spool) scan(seg *Segment, buf []byte) ([]byte, error) {
	b, err := readFile(seg.Path, buf)
	if err != nil {
		return buf, err
	}
	seg.size = int64(len(b))
	var off int
	for off < len(b) {
		r, n, ok := decodeRecord(b[off:])
		if !ok {
			seg.Corrupt = true
			corruptTotal.Inc()
			s.opt.Logger.Error("spool segment has a torn or corrupt record; the rest of it is skipped",
				"segment", seg.Path, "offset", off, "bytes_skipped", len(b)-off)
			break
		}
		if seg.Records == 0 {
			seg.oldest = r.UnixNano
		}
		seg.Records++
		off += n
	}
	seg.valid = int64(off)
	return b, nil
}

func readFile(path string, buf []byte) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return buf, fmt.Errorf("cannot open spool segment: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return buf, fmt.Errorf("cannot stat spool segment: %w", err)
	}
	if int64(cap(buf)) < st.Size() {
		buf = make([]byte, st.Size())
	}
	buf = buf[:st.Size()]
	n, err := f.ReadAt(buf, 0)
	if err != nil && n != len(buf) {
		return buf, fmt.Errorf("cannot read spool segment %s: %w", path, err)
	}
	return buf[:n], nil
}

// HasRoom reports whether the bytes held and reserved are below the cap
// minus its margin (a sixteenth).
func (s *Spool) HasRoom() bool { return s.HasRoomFor(1) }

// HasRoomFor reports whether Reserve(n) would set room aside now.
func (s *Spool) HasRoomFor(n int64) bool {
	s.mu.Lock()
	closed := s.closed
	s.mu.Unlock()
	return !closed && s.bytes.Load()+s.reserved.Load()+n <= s.reserveLimit()
}

// reserveLimit: reservations stop a sixteenth below the cap, which is left
// to records appended without one (denials, audit records, strict-mode
// intents) and to records larger than their reservation.
func (s *Spool) reserveLimit() int64 { return s.opt.MaxBytes - s.opt.MaxBytes/16 }

// Reserve sets n bytes aside for a record to be appended later with
// AppendReserved; false (nothing reserved) when the bytes held and reserved
// would pass the cap minus its margin. Safe for concurrent use without a
// lock: concurrent reservations never over-commit the spool together.
func (s *Spool) Reserve(n int64) bool {
	r := s.reserved.Add(n)
	if s.bytes.Load()+r > s.reserveLimit() {
		s.reserved.Add(-n)
		return false
	}
	return true
}

// Unreserve gives back n bytes taken by Reserve whose record was not
// appended (it went to Kafka, or the request was not forwarded).
func (s *Spool) Unreserve(n int64) { s.reserved.Add(-n) }

// Reserved returns the bytes currently reserved.
func (s *Spool) Reserved() int64 { return s.reserved.Load() }

// Append writes one record and returns once it is durable (fsynced with its
// group), with the sequence number of the segment that holds it. A pinned
// record keeps its segment from being removed until Unpin(seq). It needs
// room beside what is reserved: ErrFull when the bytes held, the bytes
// reserved and the record would pass the cap.
func (s *Spool) Append(tag byte, payload []byte, pin bool) (uint64, error) {
	return s.append(tag, payload, pin, 0)
}

// AppendReserved is Append for a record whose room was set aside by
// Reserve(reserved): it is never refused for room (a record larger than its
// reservation may take some of the cap's margin) and the reservation becomes
// the record's bytes. On an error the reservation is still held.
func (s *Spool) AppendReserved(tag byte, payload []byte, pin bool, reserved int64) (uint64, error) {
	return s.append(tag, payload, pin, reserved)
}

func (s *Spool) append(tag byte, payload []byte, pin bool, reserved int64) (uint64, error) {
	if tag == 0 || len(payload) > MaxRecord {
		return 0, fmt.Errorf("cannot append to the spool: tag %d, %d bytes", tag, len(payload))
	}
	need := int64(headerLen + len(payload))
	now := time.Now().UnixNano()
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return 0, ErrClosed
	}
	if reserved > 0 {
		// Bytes first, then the reservation: a concurrent Reserve sees
		// too much, never too little.
		s.bytes.Add(need)
		s.reserved.Add(-reserved)
	} else if s.bytes.Add(need)+s.reserved.Load() > s.opt.MaxBytes {
		// Added before the check, as Reserve does: of an append and a
		// reservation racing for the last room, at least one sees the other.
		s.bytes.Add(-need)
		s.mu.Unlock()
		fullTotal.Inc()
		return 0, ErrFull
	}
	b := s.pending
	b.buf = appendRecord(b.buf, tag, now, payload)
	b.n++
	if pin {
		b.pins++
	}
	b.waiters++
	s.work.Signal()
	for !b.finished {
		s.done.Wait()
	}
	seq, err := b.seq, b.err
	b.waiters--
	if b.waiters == 0 {
		s.done.Broadcast()
	}
	s.mu.Unlock()
	if err != nil {
		if reserved > 0 {
			s.reserved.Add(reserved) // finish took the bytes back
		}
		return 0, err
	}
	return seq, nil
}

// Unpin releases a pin taken by Append.
func (s *Spool) Unpin(seq uint64) {
	s.mu.Lock()
	for _, seg := range s.segs {
		if seg.Seq == seq {
			seg.pins--
			break
		}
	}
	s.mu.Unlock()
}

func (s *Spool) writer() {
	defer s.wg.Done()
	s.mu.Lock()
	defer s.mu.Unlock()
	for {
		for len(s.pending.buf) == 0 && !s.closed {
			s.work.Wait()
		}
		if len(s.pending.buf) == 0 {
			return
		}
		for s.spare.waiters > 0 {
			s.done.Wait()
		}
		b := s.pending
		s.pending, s.spare = s.spare, b
		s.pending.buf, s.pending.n, s.pending.pins, s.pending.finished, s.pending.err = s.pending.buf[:0], 0, 0, false, nil
		s.writing = true
		seg, err := s.activeSegment()
		if err == nil {
			f := s.active
			s.mu.Unlock()
			err = s.write(f, b.buf)
			s.mu.Lock()
		}
		s.finish(b, seg, err)
		s.writing = false
		s.done.Broadcast()
	}
}

func (s *Spool) write(f *os.File, p []byte) error {
	if _, err := f.Write(p); err != nil {
		return fmt.Errorf("cannot write to the spool: %w", err)
	}
	if s.opt.NoSync {
		return nil
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("cannot fsync the spool: %w", err)
	}
	return nil
}

// finish accounts a written batch and wakes its appenders.
func (s *Spool) finish(b *batch, seg *Segment, err error) {
	b.finished, b.err = true, err
	if err != nil {
		s.bytes.Add(-int64(len(b.buf)))
		writeErrors.Inc()
		s.opt.Logger.Error("cannot write to the spool", "err", err)
		if seg != nil {
			// The segment may end in a partial batch: seal it; its tail is
			// detected as torn when it is read.
			if st, e := s.active.Stat(); e == nil {
				s.bytes.Add(st.Size() - seg.size)
				seg.size = st.Size()
			}
			s.sealActive()
		}
		return
	}
	b.seq = seg.Seq
	if seg.Records == 0 {
		seg.oldest = int64(leUint64(b.buf[9:17]))
	}
	seg.Records += b.n
	seg.pins += b.pins
	seg.size += int64(len(b.buf))
	seg.valid = seg.size
	s.records += int64(b.n)
	if seg.size >= s.opt.SegmentBytes {
		s.sealActive()
	}
}

func leUint64(b []byte) uint64 {
	return uint64(b[0]) | uint64(b[1])<<8 | uint64(b[2])<<16 | uint64(b[3])<<24 |
		uint64(b[4])<<32 | uint64(b[5])<<40 | uint64(b[6])<<48 | uint64(b[7])<<56
}

// activeSegment returns the segment appends go to, creating it when needed.
func (s *Spool) activeSegment() (*Segment, error) {
	if s.active != nil {
		return s.segs[len(s.segs)-1], nil
	}
	seg := &Segment{Seq: s.nextSeq, Path: filepath.Join(s.opt.Dir, segName(s.nextSeq))}
	f, err := os.OpenFile(seg.Path, os.O_CREATE|os.O_EXCL|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return nil, fmt.Errorf("cannot create spool segment: %w", err)
	}
	if !s.opt.NoSync {
		if err := syncDir(s.opt.Dir); err != nil {
			f.Close()
			os.Remove(seg.Path)
			return nil, err
		}
	}
	s.nextSeq++
	s.active = f
	s.segs = append(s.segs, seg)
	return seg, nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("cannot open spool directory: %w", err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("cannot fsync spool directory: %w", err)
	}
	return nil
}

func (s *Spool) sealActive() {
	if s.active == nil {
		return
	}
	s.active.Close()
	s.active = nil
	s.segs[len(s.segs)-1].sealed = true
}

// Seal closes the active segment once no batch is being written, so the
// drainer can read it; the next append starts a new segment.
func (s *Spool) Seal() {
	s.mu.Lock()
	for s.writing {
		s.done.Wait()
	}
	if s.active != nil && s.segs[len(s.segs)-1].Records > 0 {
		s.sealActive()
	}
	s.mu.Unlock()
}

// Sealed returns the sealed segments, oldest first.
func (s *Spool) Sealed() []*Segment {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]*Segment, 0, len(s.segs))
	for _, seg := range s.segs {
		if seg.sealed {
			out = append(out, seg)
		}
	}
	return out
}

// Read calls fn for every valid record of a sealed segment, oldest first; a
// record that fails its checksum now (a flipped bit since Open) ends the
// segment and is counted. buf is reused and returned.
func (s *Spool) Read(seg *Segment, buf []byte, fn func(Record) error) ([]byte, error) {
	b, err := readFile(seg.Path, buf)
	if err != nil {
		return b, err
	}
	s.mu.Lock()
	valid := seg.valid
	s.mu.Unlock()
	b = b[:min(int64(len(b)), valid)]
	for off := 0; off < len(b); {
		r, n, ok := decodeRecord(b[off:])
		if !ok {
			corruptTotal.Inc()
			s.opt.Logger.Error("spool record failed its checksum; the rest of the segment is skipped",
				"segment", seg.Path, "offset", off)
			s.mu.Lock()
			seg.valid, seg.Corrupt = int64(off), true
			s.mu.Unlock()
			break
		}
		if err := fn(r); err != nil {
			return b, err
		}
		off += n
	}
	return b, nil
}

// producedSuffix marks a segment whose records were all delivered but that
// is kept (pinned by strict-mode intents): a restart does not deliver it
// again.
const producedSuffix = ".produced"

// MarkProduced records durably that every record of a sealed segment was
// delivered, so a restart does not deliver them again while the segment is
// kept for its pinned intents.
func (s *Spool) MarkProduced(seg *Segment) error {
	s.mu.Lock()
	seg.Produced = true
	keep := seg.pins > 0
	s.mu.Unlock()
	if !keep {
		return nil // Remove deletes it now
	}
	f, err := os.OpenFile(seg.Path+producedSuffix, os.O_CREATE|os.O_WRONLY, 0o600)
	if err != nil {
		return fmt.Errorf("cannot mark spool segment produced: %w", err)
	}
	err = f.Close()
	if err == nil && !s.opt.NoSync {
		err = syncDir(s.opt.Dir)
	}
	if err != nil {
		return fmt.Errorf("cannot mark spool segment produced: %w", err)
	}
	return nil
}

// Remove deletes a sealed segment whose records were all delivered; it
// reports false (and keeps it) while strict-mode intents in it are pinned.
func (s *Spool) Remove(seg *Segment) (bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !seg.sealed {
		return false, fmt.Errorf("BUG: removing the active spool segment %s", seg.Path)
	}
	seg.Produced = true
	if seg.pins > 0 {
		return false, nil
	}
	if err := os.Remove(seg.Path); err != nil && !os.IsNotExist(err) {
		return false, fmt.Errorf("cannot remove spool segment: %w", err)
	}
	os.Remove(seg.Path + producedSuffix) //nolint:errcheck // absent unless it was pinned
	for i, x := range s.segs {
		if x == seg {
			s.segs = append(s.segs[:i], s.segs[i+1:]...)
			break
		}
	}
	s.bytes.Add(-seg.size)
	s.records -= int64(seg.Records)
	return true, nil
}

// Stats returns the records and bytes held and the time of the oldest record
// (zero when empty).
func (s *Spool) Stats() (records, bytes int64, oldest time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, seg := range s.segs {
		if seg.Records > 0 {
			oldest = time.Unix(0, seg.oldest)
			break
		}
	}
	return s.records, s.bytes.Load(), oldest
}

// Dir returns the spool's directory.
func (s *Spool) Dir() string { return s.opt.Dir }

// Close writes what is pending, stops the writer and closes the active
// segment.
func (s *Spool) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	s.work.Broadcast()
	s.mu.Unlock()
	s.wg.Wait()
	s.mu.Lock()
	var err error
	if s.active != nil {
		err = s.active.Close()
		s.active = nil
		s.segs[len(s.segs)-1].sealed = true
	}
	s.mu.Unlock()
	unregister(s)
	s.lock.Close()
	return err
}
