package spool

import (
	"encoding/binary"
	"hash/crc32"
)

// A record on disk:
//
//	length  uint32 LE  bytes after the 8-byte prefix (tag + time + payload)
//	crc     uint32 LE  CRC32C of those bytes
//	tag     uint8      what the payload is (the caller's choice, never 0)
//	time    int64 LE   Unix nanoseconds of the append
//	payload
//
// A record whose prefix is cut, whose length runs past the end of its segment
// or whose checksum does not match ends the segment's valid part: what follows
// cannot be framed reliably.
const (
	prefixLen = 8
	headerLen = prefixLen + 1 + 8
	// MaxRecord bounds one record's payload.
	MaxRecord = 1 << 20
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// appendRecord appends the encoded record to dst.
func appendRecord(dst []byte, tag byte, unixNano int64, payload []byte) []byte {
	start := len(dst)
	dst = binary.LittleEndian.AppendUint32(dst, uint32(1+8+len(payload)))
	dst = binary.LittleEndian.AppendUint32(dst, 0)
	dst = append(dst, tag)
	dst = binary.LittleEndian.AppendUint64(dst, uint64(unixNano))
	dst = append(dst, payload...)
	binary.LittleEndian.PutUint32(dst[start+4:], crc32.Checksum(dst[start+prefixLen:], castagnoli))
	return dst
}

// Record is one decoded record; Payload points into the reader's buffer.
type Record struct {
	Tag      byte
	UnixNano int64
	Payload  []byte
}

// decodeRecord decodes the record at the start of b. ok is false when b does
// not start with a whole, intact record (a torn or corrupt tail).
func decodeRecord(b []byte) (r Record, n int, ok bool) {
	if len(b) < headerLen {
		return r, 0, false
	}
	l := int(binary.LittleEndian.Uint32(b))
	if l < 9 || l > 9+MaxRecord || prefixLen+l > len(b) {
		return r, 0, false
	}
	body := b[prefixLen : prefixLen+l]
	if crc32.Checksum(body, castagnoli) != binary.LittleEndian.Uint32(b[4:]) || body[0] == 0 {
		return r, 0, false
	}
	return Record{Tag: body[0], UnixNano: int64(binary.LittleEndian.Uint64(body[1:9])), Payload: body[9:]}, prefixLen + l, true
}
