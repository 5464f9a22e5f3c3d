package recovery

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/twmb/franz-go/pkg/kadm"

	"github.com/caracal-gw/caracal/consumers/aggregate"
	"github.com/caracal-gw/caracal/consumers/runner"
	"github.com/caracal-gw/caracal/internal/budget"
	"github.com/caracal-gw/caracal/internal/config"
)

// ReplayOptions say what to re-consume.
type ReplayOptions struct {
	Topic, Group, DLQ string
	// Start is where the aggregator group starts (a snapshot's offsets, or
	// OffsetsAt a timestamp).
	Start map[int32]int64
	// Timeout bounds the whole replay (default 1 h).
	Timeout  time.Duration
	Progress func(done, total int64)
	// ExtraOpts reach the runner (tests).
	Runner runner.Options
	// LedgerPool and LedgerGroup let the aggregator check spooled records
	// against the ledger (aggregate.Aggregator.LedgerPool); without them a
	// batch holding one is refused and retried.
	LedgerPool  *pgxpool.Pool
	LedgerGroup string
}

// OffsetsAt returns the first offset of each partition of topic at or after
// t (the end when nothing is that new).
func OffsetsAt(ctx context.Context, adm *kadm.Client, topic string, t time.Time) (map[int32]int64, error) {
	l, err := adm.ListOffsetsAfterMilli(ctx, t.UnixMilli(), topic)
	if err == nil {
		err = l.Error()
	}
	if err != nil {
		return nil, fmt.Errorf("cannot list the offsets of %s at %s: %w", topic, t.Format(time.RFC3339), err)
	}
	out := map[int32]int64{}
	l.Each(func(o kadm.ListedOffset) { out[o.Partition] = o.Offset })
	return out, nil
}

// Replay commits opt.Start for the aggregator group (its consumers must be
// stopped), then runs the MetricsAggregator in this process until it has
// consumed up to the end offsets seen at the start. The fences make records
// the totals already hold change nothing, so the aggregates end in the state
// an undisturbed run reaches.
func Replay(ctx context.Context, cfg *config.Config, st *budget.Store, adm *kadm.Client, opt ReplayOptions) error {
	if opt.Timeout <= 0 {
		opt.Timeout = time.Hour
	}
	ctx, cancel := context.WithTimeout(ctx, opt.Timeout)
	defer cancel()
	var offs kadm.Offsets
	for p, o := range opt.Start {
		offs.AddOffset(opt.Topic, p, o, -1)
	}
	res, err := adm.CommitOffsets(ctx, opt.Group, offs)
	if err == nil {
		err = res.Error()
	}
	if err != nil {
		return fmt.Errorf("cannot set the offsets of group %s (stop the MetricsAggregator first): %w", opt.Group, err)
	}
	ends, err := adm.ListEndOffsets(ctx, opt.Topic)
	if err == nil {
		err = ends.Error()
	}
	if err != nil {
		return fmt.Errorf("cannot list the end offsets of %s: %w", opt.Topic, err)
	}
	end := map[int32]int64{}
	var total int64
	ends.Each(func(o kadm.ListedOffset) {
		end[o.Partition] = o.Offset
		total += max(o.Offset-opt.Start[o.Partition], 0)
	})
	ro := opt.Runner
	ro.Name, ro.Group, ro.Topics, ro.DLQTopic = "metrics", opt.Group, []string{opt.Topic}, opt.DLQ
	if ro.MaxPollRecords == 0 {
		ro.MaxPollRecords = cfg.Kafka.Consumer.MaxPollRecords
	}
	agg := aggregate.New(st, opt.Group)
	agg.LedgerPool, agg.LedgerGroup = opt.LedgerPool, opt.LedgerGroup
	r, err := runner.New(cfg, agg, ro)
	if err != nil {
		return err
	}
	defer r.Close()
	rctx, rcancel := context.WithCancel(ctx)
	errc := make(chan error, 1)
	go func() { errc <- r.Run(rctx) }()
	defer func() { rcancel(); <-errc }()
	t := time.NewTicker(200 * time.Millisecond)
	defer t.Stop()
	for {
		done, caught, err := replayed(ctx, adm, opt.Group, opt.Topic, opt.Start, end)
		if err != nil {
			return err
		}
		if opt.Progress != nil {
			opt.Progress(min(done, total), total)
		}
		if caught {
			return nil
		}
		select {
		case <-ctx.Done():
			return errors.Join(fmt.Errorf("replay did not reach the end offsets: %w", ctx.Err()))
		case err := <-errc:
			errc <- err
			return fmt.Errorf("the replaying aggregator stopped: %v", err)
		case <-t.C:
		}
	}
}

func replayed(ctx context.Context, adm *kadm.Client, group, topic string, start, end map[int32]int64) (done int64, caught bool, err error) {
	offs, err := adm.FetchOffsets(ctx, group)
	if err != nil {
		return 0, false, fmt.Errorf("cannot fetch the offsets of group %s: %w", group, err)
	}
	at := map[int32]int64{}
	offs.Each(func(o kadm.OffsetResponse) {
		if o.Topic == topic && o.Err == nil {
			at[o.Partition] = o.At
		}
	})
	caught = true
	for p, e := range end {
		done += max(at[p]-start[p], 0)
		if at[p] < e {
			caught = false
		}
	}
	return done, caught, nil
}
