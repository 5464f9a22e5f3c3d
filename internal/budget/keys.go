package budget

import (
	"strconv"
	"time"

	"github.com/caracal-gw/caracal/internal/control"
	"github.com/caracal-gw/caracal/internal/event"
)

// MaxLimitMicros caps policy limits and amounts. Lua numbers are doubles,
// exact to 2^53; the cap leaves room for committed + reserved + overshoot to
// add up without losing a micro-unit (2^52 micro-units ≈ 4.5 billion units).
const MaxLimitMicros = 1 << 52

// Gran is a bucket granularity of committed spend.
type Gran byte

const (
	Minute Gran = 'm'
	Hour   Gran = 'h'
	Day    Gran = 'd'
	Week   Gran = 'w' // ISO week, Monday 00:00 UTC
	Month  Gran = 'M'
)

// Grans lists every granularity ApplyBatch writes.
var Grans = [...]Gran{Minute, Hour, Day, Week, Month}

// ttlSeconds keeps a bucket as long as any window may still read it.
func (g Gran) ttlSeconds() int64 {
	switch g {
	case Minute:
		return 2 * 3600
	case Hour:
		return 2 * 86400
	case Day:
		return 33 * 86400
	case Week:
		return 15 * 86400
	default:
		return 63 * 86400
	}
}

// BucketOf returns the bucket number of t at granularity g: minutes, hours
// or days since the Unix epoch, weeks since Monday 1969-12-29, or
// year*12+month-1.
func BucketOf(g Gran, t time.Time) int64 {
	t = t.UTC()
	s := t.Unix()
	switch g {
	case Minute:
		return floorDiv(s, 60)
	case Hour:
		return floorDiv(s, 3600)
	case Day:
		return floorDiv(s, 86400)
	case Week:
		// 1970-01-01 was a Thursday: day 0 is 3 days after a Monday.
		return floorDiv(floorDiv(s, 86400)+3, 7)
	default:
		return int64(t.Year())*12 + int64(t.Month()) - 1
	}
}

func floorDiv(a, b int64) int64 {
	q := a / b
	if a%b != 0 && (a < 0) != (b < 0) {
		q--
	}
	return q
}

// span is the set of buckets a window sums at one instant: n buckets of
// granularity g ending with newest.
type span struct {
	g      Gran
	n      int
	newest int64
}

// spanOf returns the buckets that make up window w at now. A calendar window
// is its one bucket. A rolling window is the current fine bucket plus the
// full window of finer buckets before it, so it covers at least the whole
// window (never less: no spend is forgotten early) and at most one fine
// bucket more (docs/budget.md, granularity error).
func spanOf(w control.Window, rolling bool, now time.Time) span {
	if !rolling {
		switch w {
		case control.Hourly:
			return span{Hour, 1, BucketOf(Hour, now)}
		case control.Daily:
			return span{Day, 1, BucketOf(Day, now)}
		case control.Weekly:
			return span{Week, 1, BucketOf(Week, now)}
		default:
			return span{Month, 1, BucketOf(Month, now)}
		}
	}
	switch w {
	case control.Hourly:
		return span{Minute, 61, BucketOf(Minute, now)}
	case control.Daily:
		return span{Hour, 25, BucketOf(Hour, now)}
	case control.Weekly:
		return span{Day, 8, BucketOf(Day, now)}
	default:
		return span{Day, 31, BucketOf(Day, now)}
	}
}

// prefix returns "cr:{<root>}:", the hash-tagged prefix of a tree's keys.
func prefix(root event.UUID) string {
	b := make([]byte, 0, 44)
	b = append(b, "cr:{"...)
	b = root.AppendText(b)
	b = append(b, "}:"...)
	return string(b)
}

func bucketKey(pfx string, agent event.UUID, g Gran, bucket int64) string {
	b := make([]byte, 0, len(pfx)+60)
	b = append(b, pfx...)
	b = append(b, "s:"...)
	b = agent.AppendText(b)
	b = append(b, ':', byte(g), ':')
	b = strconv.AppendInt(b, bucket, 10)
	return string(b)
}

func reservedKey(pfx string, agent event.UUID) string {
	return pfx + "r:" + agent.String()
}

func leasesKey(pfx string) string { return pfx + "leases" }

func fenceKey(pfx, group, topic string, partition int32) string {
	return pfx + "f:" + group + ":" + topic + ":" + strconv.FormatInt(int64(partition), 10)
}

// leaseMember names the lease of one owner (a gateway process) for an agent.
func leaseMember(agent event.UUID, owner string) string {
	return agent.String() + ":" + owner
}

func itoa(v int64) string { return strconv.FormatInt(v, 10) }
