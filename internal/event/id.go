package event

import (
	"crypto/rand"
	"encoding/binary"
	"errors"
	"sync/atomic"
	"time"
)

// ID is a 128-bit sortable unique id in the ULID layout: 48 bits of Unix
// milliseconds, then 80 bits that are unique per generator (a random 32-bit
// node number and a 48-bit counter that starts at a random value).
type ID [16]byte

// IDGen hands out IDs without locks or allocation.
type IDGen struct {
	node uint32
	ctr  atomic.Uint64
}

// NewIDGen returns a generator with a random node number and counter start.
func NewIDGen() *IDGen {
	var b [12]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic("BUG: crypto/rand failed: " + err.Error())
	}
	g := &IDGen{node: binary.BigEndian.Uint32(b[:4])}
	g.ctr.Store(binary.BigEndian.Uint64(b[4:]) & (1<<47 - 1))
	return g
}

// New returns the next ID for time now.
func (g *IDGen) New(now time.Time) ID {
	var id ID
	ms := uint64(now.UnixMilli())
	c := g.ctr.Add(1)
	binary.BigEndian.PutUint64(id[0:8], ms<<16|uint64(g.node>>16))
	binary.BigEndian.PutUint64(id[8:16], uint64(g.node&0xffff)<<48|c&(1<<48-1))
	return id
}

// Time returns the millisecond timestamp in the id.
func (id ID) Time() time.Time {
	return time.UnixMilli(int64(binary.BigEndian.Uint64(id[0:8]) >> 16))
}

const crockford = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"

// AppendText appends the 26-character Crockford base32 form.
func (id ID) AppendText(dst []byte) []byte {
	hi := binary.BigEndian.Uint64(id[0:8])
	lo := binary.BigEndian.Uint64(id[8:16])
	// 130 bits: two zero bits, then the 128 bits of the id, 5 bits per char.
	for i := 0; i < 26; i++ {
		shift := uint(125 - 5*i)
		var v uint64
		switch {
		case shift >= 64:
			v = hi >> (shift - 64)
		case shift+5 > 64:
			v = hi<<(64-shift) | lo>>shift
		default:
			v = lo >> shift
		}
		dst = append(dst, crockford[v&31])
	}
	return dst
}

// String returns the text form.
func (id ID) String() string { return string(id.AppendText(make([]byte, 0, 26))) }

var errBadID = errors.New("invalid event id: want 26 Crockford base32 characters")

// ParseID parses the 26-character text form.
func ParseID(s []byte) (ID, error) {
	var id ID
	if len(s) != 26 {
		return id, errBadID
	}
	var hi, lo uint64
	for i, c := range s {
		v := crockVal(c)
		if v < 0 || (i == 0 && v > 7) {
			return id, errBadID
		}
		hi = hi<<5 | lo>>59
		lo = lo<<5 | uint64(v)
	}
	binary.BigEndian.PutUint64(id[0:8], hi)
	binary.BigEndian.PutUint64(id[8:16], lo)
	return id, nil
}

func crockVal(c byte) int {
	switch {
	case c >= '0' && c <= '9':
		return int(c - '0')
	case c >= 'a' && c <= 'z':
		c -= 'a' - 'A'
	}
	for i := 10; i < 32; i++ {
		if crockford[i] == c {
			return i
		}
	}
	return -1
}
