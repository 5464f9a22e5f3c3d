package event

import (
	"encoding/hex"
	"errors"
)

// UUID is an agent id as stored in PostgreSQL.
type UUID [16]byte

// AppendText appends the canonical 36-character form.
func (u UUID) AppendText(dst []byte) []byte {
	var buf [36]byte
	hex.Encode(buf[0:8], u[0:4])
	buf[8] = '-'
	hex.Encode(buf[9:13], u[4:6])
	buf[13] = '-'
	hex.Encode(buf[14:18], u[6:8])
	buf[18] = '-'
	hex.Encode(buf[19:23], u[8:10])
	buf[23] = '-'
	hex.Encode(buf[24:], u[10:])
	return append(dst, buf[:]...)
}

// String returns the canonical form.
func (u UUID) String() string { return string(u.AppendText(nil)) }

// IsZero reports whether u is the zero UUID.
func (u UUID) IsZero() bool { return u == UUID{} }

var errBadUUID = errors.New("invalid uuid")

// ParseUUID parses the canonical 36-character form.
func ParseUUID(s []byte) (UUID, error) {
	var u UUID
	if len(s) != 36 || s[8] != '-' || s[13] != '-' || s[18] != '-' || s[23] != '-' {
		return u, errBadUUID
	}
	var h [32]byte
	copy(h[0:8], s[0:8])
	copy(h[8:12], s[9:13])
	copy(h[12:16], s[14:18])
	copy(h[16:20], s[19:23])
	copy(h[20:], s[24:])
	if _, err := hex.Decode(u[:], h[:]); err != nil {
		return u, errBadUUID
	}
	return u, nil
}
