package recovery

import (
	"context"
	"fmt"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/caracal-gw/caracal/internal/budget"
	"github.com/caracal-gw/caracal/internal/config"
	"github.com/caracal-gw/caracal/internal/event"
	"github.com/caracal-gw/caracal/internal/kafkaopt"
)

// readPending reads the metering topic from resume to the end offsets it
// finds and sums, per tree and lease (agent, gateway), what the events
// charged to their lease (Metering.ReservedMicros): charges the rebuilt
// totals do not hold yet, which a Redis that lost its data lost the
// reservation of too. Undecodable records are the DLQ's business and are
// skipped. It gives up (with an error) after wait.
func readPending(ctx context.Context, cfg *config.Config, adm *kadm.Client, topic string, resume map[int32]int64, wait time.Duration) (map[event.UUID][]budget.PendingLease, int64, error) {
	ends, err := adm.ListEndOffsets(ctx, topic)
	if err == nil {
		err = ends.Error()
	}
	if err != nil {
		return nil, 0, fmt.Errorf("cannot list the end offsets of %s: %w", topic, err)
	}
	left := map[int32]int64{} // partition -> end offset still to reach
	from := map[int32]kgo.Offset{}
	ends.Each(func(o kadm.ListedOffset) {
		if start := resume[o.Partition]; o.Offset > start {
			left[o.Partition] = o.Offset
			from[o.Partition] = kgo.NewOffset().At(start)
		}
	})
	out := map[event.UUID][]budget.PendingLease{}
	if len(left) == 0 {
		return out, 0, nil
	}
	opts := append(kafkaopt.Client(cfg), kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: from}),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()), kgo.FetchMaxWait(200*time.Millisecond))
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return nil, 0, fmt.Errorf("cannot read the metering topic's tail: %w", err)
	}
	defer cl.Close()
	type key struct {
		agent event.UUID
		owner string
	}
	at := map[key]int{}
	var records int64
	var m event.Metering
	// A partition whose last offsets are transaction markers never shows
	// a record at end-1: five empty polls of a second in a row end the
	// read too.
	ctx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	for empty := 0; len(left) > 0 && empty < 5; {
		pctx, pcancel := context.WithTimeout(ctx, time.Second)
		f := cl.PollFetches(pctx)
		pcancel()
		if err := ctx.Err(); err != nil {
			return nil, 0, fmt.Errorf("cannot read the metering topic's tail up to its end: %w", err)
		}
		n := 0
		f.EachRecord(func(r *kgo.Record) {
			end, ok := left[r.Partition]
			if !ok || r.Offset >= end {
				return
			}
			n++
			if r.Offset+1 >= end {
				delete(left, r.Partition)
			}
			if event.DecodeMetering(r.Value, &m) != nil || m.ReservedMicros <= 0 || len(m.Gateway) == 0 {
				return
			}
			records++
			k := key{m.Agent, string(m.Gateway)}
			i, seen := at[k]
			if !seen {
				chain := append([]event.UUID{m.Agent}, m.Ancestors[:m.NumAncestors]...)
				i = len(out[m.Root])
				at[k] = i
				out[m.Root] = append(out[m.Root], budget.PendingLease{Chain: chain, Owner: k.owner})
			}
			out[m.Root][i].Micros += m.ReservedMicros
		})
		if n == 0 {
			empty++
		} else {
			empty = 0
		}
	}
	return out, records, nil
}
