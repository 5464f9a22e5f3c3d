package spool

import (
	"bytes"
	"encoding/binary"
	"hash/crc32"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
)

func fuzzSeeds(f *testing.F) {
	var two []byte
	two = appendRecord(two, 1, 1_780_000_000_000_000_000, []byte(`{"v":1}`))
	two = appendRecord(two, 2, 0, nil)
	f.Add(two)
	torn := appendRecord(nil, 3, 42, bytes.Repeat([]byte("x"), 100))
	f.Add(torn[:len(torn)-7])
	flipped := appendRecord(nil, 4, 42, []byte("payload"))
	flipped[len(flipped)-1] ^= 1
	f.Add(append(appendRecord(nil, 1, 1, []byte("ok")), flipped...))
	zeroTag := appendRecord(nil, 1, 1, []byte("z"))
	zeroTag[prefixLen] = 0
	binary.LittleEndian.PutUint32(zeroTag[4:], crc32.Checksum(zeroTag[prefixLen:], castagnoli))
	f.Add(zeroTag)
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0})
}

// FuzzDecodeRecord: decoding never panics, and a record it returns is
// exactly the bytes appendRecord writes for it, so its checksum matched.
func FuzzDecodeRecord(f *testing.F) {
	fuzzSeeds(f)
	f.Fuzz(func(t *testing.T, b []byte) {
		r, n, ok := decodeRecord(b)
		if !ok {
			if n != 0 {
				t.Fatalf("a rejected record consumed %d bytes", n)
			}
			return
		}
		if n < headerLen || n > len(b) || r.Tag == 0 || len(r.Payload) > MaxRecord {
			t.Fatalf("record n=%d tag=%d payload=%d from %d bytes", n, r.Tag, len(r.Payload), len(b))
		}
		if crc32.Checksum(b[prefixLen:n], castagnoli) != binary.LittleEndian.Uint32(b[4:]) {
			t.Fatal("a record whose checksum does not match was returned")
		}
		if re := appendRecord(nil, r.Tag, r.UnixNano, r.Payload); !bytes.Equal(re, b[:n]) {
			t.Fatalf("re-encoding differs:\n%x\n%x", re, b[:n])
		}
	})
}

// FuzzSpoolSegment: a segment file of arbitrary bytes is opened and read
// back without a panic; every record read is intact (re-encodes to the bytes
// at its offset) and Read yields exactly the records Open counted.
func FuzzSpoolSegment(f *testing.F) {
	fuzzSeeds(f)
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	f.Fuzz(func(t *testing.T, data []byte) {
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, segName(7)), data, 0o600); err != nil {
			t.Fatal(err)
		}
		s, err := Open(Options{Dir: dir, NoSync: true, Logger: quiet})
		if err != nil {
			t.Fatalf("open: %v", err)
		}
		defer s.Close()
		segs := s.Sealed()
		if len(segs) != 1 {
			t.Fatalf("%d sealed segments, want 1", len(segs))
		}
		seg := segs[0]
		off, n := 0, 0
		if _, err := s.Read(seg, nil, func(r Record) error {
			re := appendRecord(nil, r.Tag, r.UnixNano, r.Payload)
			if off+len(re) > len(data) || !bytes.Equal(re, data[off:off+len(re)]) {
				t.Fatalf("record %d at offset %d is not the bytes on disk", n, off)
			}
			off += len(re)
			n++
			return nil
		}); err != nil {
			t.Fatalf("read: %v", err)
		}
		if n != seg.Records {
			t.Fatalf("Read yielded %d records, Open counted %d", n, seg.Records)
		}
		if seg.Corrupt != (off != len(data)) {
			t.Fatalf("corrupt=%v with %d of %d bytes valid", seg.Corrupt, off, len(data))
		}
	})
}
