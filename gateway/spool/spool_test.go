package spool

import (
	"errors"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"testing"
)

func open(t testing.TB, dir string, opt Options) *Spool {
	t.Helper()
	opt.Dir = dir
	s, err := Open(opt)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func readAll(t *testing.T, s *Spool) []string {
	t.Helper()
	var out []string
	for _, seg := range s.Sealed() {
		if _, err := s.Read(seg, nil, func(r Record) error {
			out = append(out, fmt.Sprintf("%d:%s", r.Tag, r.Payload))
			return nil
		}); err != nil {
			t.Fatal(err)
		}
	}
	return out
}

func TestAppendReadRestart(t *testing.T) {
	dir := t.TempDir()
	s := open(t, dir, Options{SegmentBytes: 200})
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 25 {
				if _, err := s.Append(byte(1+g), fmt.Appendf(nil, "g%d-%02d", g, i), false); err != nil {
					t.Error(err)
				}
			}
		}()
	}
	wg.Wait()
	if r, _, o := s.Stats(); r != 100 || o.IsZero() {
		t.Fatalf("stats = %d records, oldest %v", r, o)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s2 := open(t, dir, Options{SegmentBytes: 200})
	got := readAll(t, s2)
	if len(got) != 100 {
		t.Fatalf("read back %d records, want 100", len(got))
	}
	// Each goroutine's records come back in the order it appended them.
	next := map[byte]int{}
	for _, r := range got {
		var tag byte
		var g, i int
		if _, err := fmt.Sscanf(r, "%d:g%d-%d", &tag, &g, &i); err != nil {
			t.Fatal(err)
		}
		if i != next[tag] {
			t.Fatalf("record %q out of order, want index %d", r, next[tag])
		}
		next[tag]++
	}
	if len(s2.Sealed()) < 2 {
		t.Fatalf("segments = %d, want rotation at 200 bytes", len(s2.Sealed()))
	}
}

func TestDrainOrderAndRemove(t *testing.T) {
	dir := t.TempDir()
	s := open(t, dir, Options{SegmentBytes: 64})
	for i := range 10 {
		if _, err := s.Append(1, fmt.Appendf(nil, "r%d", i), false); err != nil {
			t.Fatal(err)
		}
	}
	s.Seal()
	want := 0
	for _, seg := range s.Sealed() {
		if _, err := s.Read(seg, nil, func(r Record) error {
			if string(r.Payload) != fmt.Sprintf("r%d", want) {
				return fmt.Errorf("got %s, want r%d", r.Payload, want)
			}
			want++
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		if ok, err := s.Remove(seg); !ok || err != nil {
			t.Fatalf("remove = %v, %v", ok, err)
		}
	}
	if want != 10 {
		t.Fatalf("drained %d records", want)
	}
	if r, b, _ := s.Stats(); r != 0 || b != 0 {
		t.Fatalf("after drain: %d records, %d bytes", r, b)
	}
	ents, _ := os.ReadDir(dir)
	if len(ents) != 1 || ents[0].Name() != "LOCK" {
		t.Fatalf("%d files left", len(ents))
	}
}

func TestPinKeepsSegment(t *testing.T) {
	s := open(t, t.TempDir(), Options{})
	seq, err := s.Append(4, []byte("intent"), true)
	if err != nil {
		t.Fatal(err)
	}
	s.Seal()
	seg := s.Sealed()[0]
	if ok, err := s.Remove(seg); ok || err != nil {
		t.Fatalf("pinned segment removed: %v %v", ok, err)
	}
	s.Unpin(seq)
	if ok, err := s.Remove(seg); !ok || err != nil {
		t.Fatalf("unpinned segment kept: %v %v", ok, err)
	}
}

func TestTornAndCorruptTail(t *testing.T) {
	for _, c := range []struct {
		name   string
		damage func(b []byte) []byte
		want   int
	}{
		{"truncated mid-record", func(b []byte) []byte { return b[:len(b)-3] }, 4},
		{"truncated mid-header", func(b []byte) []byte { return b[:len(b)-recLen+5] }, 4},
		{"flipped payload byte", func(b []byte) []byte { b[len(b)-2] ^= 0x40; return b }, 4},
		{"flipped length", func(b []byte) []byte { b[2*recLen] ^= 0x01; return b }, 2},
		{"garbage appended", func(b []byte) []byte { return append(b, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18) }, 5},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			s := open(t, dir, Options{})
			for i := range 5 {
				if _, err := s.Append(1, fmt.Appendf(nil, "rec-%d", i), false); err != nil {
					t.Fatal(err)
				}
			}
			s.Close()
			path := s.Sealed()[0].Path
			b, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(path, c.damage(b), 0o600); err != nil {
				t.Fatal(err)
			}
			before := corruptTotal.Get()
			s2 := open(t, dir, Options{})
			got := readAll(t, s2)
			if len(got) != c.want {
				t.Fatalf("read %d records %v, want %d", len(got), got, c.want)
			}
			for i, r := range got {
				if r != fmt.Sprintf("1:rec-%d", i) {
					t.Fatalf("record %d = %q", i, r)
				}
			}
			if corruptTotal.Get() != before+1 || !s2.Sealed()[0].Corrupt {
				t.Fatalf("corruption not reported: counter %d -> %d", before, corruptTotal.Get())
			}
		})
	}
}

// recLen is the encoded size of the records of TestTornAndCorruptTail.
var recLen = len(appendRecord(nil, 1, 0, []byte("rec-0")))

func TestFlipAfterOpenDetectedOnRead(t *testing.T) {
	s := open(t, t.TempDir(), Options{})
	for i := range 3 {
		s.Append(1, fmt.Appendf(nil, "rec-%d", i), false)
	}
	s.Seal()
	seg := s.Sealed()[0]
	b, _ := os.ReadFile(seg.Path)
	b[recLen+headerLen] ^= 1
	os.WriteFile(seg.Path, b, 0o600)
	before := corruptTotal.Get()
	if got := readAll(t, s); len(got) != 1 || corruptTotal.Get() != before+1 {
		t.Fatalf("read %v, corrupt %d -> %d", got, before, corruptTotal.Get())
	}
}

func TestSizeCap(t *testing.T) {
	s := open(t, t.TempDir(), Options{MaxBytes: 1000, SegmentBytes: 300})
	p := make([]byte, 83) // 100 bytes a record
	n := 0
	for range 20 {
		_, err := s.Append(1, p, false)
		if errors.Is(err, ErrFull) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		n++
	}
	if n != 10 {
		t.Fatalf("appended %d records under a 1000-byte cap, want 10", n)
	}
	if s.HasRoom() {
		t.Fatal("HasRoom at the cap")
	}
	s.Seal()
	if _, err := s.Remove(s.Sealed()[0]); err != nil {
		t.Fatal(err)
	}
	if !s.HasRoom() {
		t.Fatal("no room after a segment was drained")
	}
	if _, err := s.Append(1, p, false); err != nil {
		t.Fatal(err)
	}
}

func TestAppendAfterClose(t *testing.T) {
	s := open(t, t.TempDir(), Options{})
	s.Close()
	if _, err := s.Append(1, []byte("x"), false); !errors.Is(err, ErrClosed) {
		t.Fatalf("err = %v", err)
	}
}

func TestAppendAllocs(t *testing.T) {
	s := open(t, t.TempDir(), Options{NoSync: true, MaxBytes: 1 << 30, SegmentBytes: 1 << 30})
	p := make([]byte, 400)
	s.Append(1, p, false) // creates the segment
	n := testing.AllocsPerRun(200, func() {
		if _, err := s.Append(1, p, false); err != nil {
			t.Fatal(err)
		}
	})
	if n != 0 {
		t.Fatalf("Append allocates %v times", n)
	}
}

func TestDirLocked(t *testing.T) {
	dir := t.TempDir()
	open(t, dir, Options{})
	if _, err := Open(Options{Dir: dir}); err == nil {
		t.Fatal("a second spool opened the same directory")
	}
}

func TestProducedMarkSurvivesRestart(t *testing.T) {
	dir := t.TempDir()
	s := open(t, dir, Options{})
	seq, err := s.Append(4, []byte("intent"), true)
	if err != nil {
		t.Fatal(err)
	}
	s.Append(1, []byte("event"), false) //nolint:errcheck
	s.Seal()
	seg := s.Sealed()[0]
	if err := s.MarkProduced(seg); err != nil {
		t.Fatal(err)
	}
	if ok, _ := s.Remove(seg); ok {
		t.Fatal("a pinned segment was removed")
	}
	s.Close()
	s2 := open(t, dir, Options{})
	if segs := s2.Sealed(); len(segs) != 1 || !segs[0].Produced {
		t.Fatalf("after restart: %+v", segs)
	}
	s2.Unpin(seq) // pins do not survive a restart: nothing to release
	if ok, err := s2.Remove(s2.Sealed()[0]); !ok || err != nil {
		t.Fatalf("remove = %v %v", ok, err)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 1 {
		t.Fatalf("%d files left, want only LOCK", len(ents))
	}
}

// TestReserve: reservations never over-commit the spool, even when many are
// taken at once; a reserved record is appended even when the rest of the
// spool is full, and records without a reservation leave reserved room alone.
func TestReserve(t *testing.T) {
	s := open(t, t.TempDir(), Options{MaxBytes: 16 << 10, SegmentBytes: 4 << 10})
	const n = 1000
	limit := int64(16<<10) - (16<<10)/16
	var ok atomic.Int64
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 100 {
				if s.Reserve(n) {
					ok.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	if got, want := ok.Load(), limit/n; got != want {
		t.Fatalf("%d reservations of %d bytes granted under a %d-byte limit, want %d", got, n, limit, want)
	}
	if s.Reserved() != ok.Load()*n || s.HasRoom() && s.Reserve(n) {
		t.Fatalf("reserved %d, HasRoom %v after the limit", s.Reserved(), s.HasRoom())
	}
	// Unreserved appends fit only beside the reservations.
	free := int64(16<<10) - s.Reserved()
	p := make([]byte, 83) // 100 bytes a record
	appended := int64(0)
	for range 100 {
		if _, err := s.Append(1, p, false); errors.Is(err, ErrFull) {
			break
		} else if err != nil {
			t.Fatal(err)
		}
		appended++
	}
	if appended != free/100 {
		t.Fatalf("%d unreserved records appended beside %d reserved bytes, want %d", appended, s.Reserved(), free/100)
	}
	// Every reservation becomes a record, though the spool is full.
	big := make([]byte, n-headerLen)
	for i := range ok.Load() {
		if _, err := s.AppendReserved(2, big, false, n); err != nil {
			t.Fatalf("reserved append %d: %v", i, err)
		}
	}
	if s.Reserved() != 0 {
		t.Fatalf("%d bytes still reserved", s.Reserved())
	}
	if _, b, _ := s.Stats(); b > 16<<10 {
		t.Fatalf("spool holds %d bytes over its cap", b)
	}
	s.Unreserve(0)
	if s.Reserve(n) {
		t.Fatal("reservation granted in a full spool")
	}
}
