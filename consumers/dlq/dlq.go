// Package dlq replays the dead-letter topic (kafka.topics.dlq) into the
// topics its records came from, once the consumers that rejected them can
// read them (a consumer upgrade for a newer event version, say).
//
// A DLQ record is the rejected record byte for byte (key, value, headers)
// plus the runner's headers (consumers/runner: source topic, partition,
// offset, the error and the consumer). Replay re-produces the key, the value
// and the original headers to the source topic, only when it is one of
// Caracal's topics (metering, decisions, audit; anything else is refused and
// reported), with acks=all and the idempotent producer, and adds the header
// caracal-dlq-replayed so a record that is rejected again and comes back to
// the DLQ is not replayed a second time (unless Force), and caracal-dlq-for
// naming the consumer that rejected it: only that consumer takes the replay
// (the others of the topic took the original), so no consumer counts an
// event twice. Each consumer's copy is replayed for it.
//
// Progress is kept per source topic in consumer groups of its own on the
// DLQ topic (<groupPrefix>-dlq-replay-metering, -decisions, -audit),
// committed only after the records replayed so far are acknowledged: a
// second run replays nothing already replayed, a crash replays at most the
// batch whose acknowledgement had not been committed. Run one replay at a
// time.
package dlq

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/caracal-gw/caracal/consumers/runner"
	"github.com/caracal-gw/caracal/internal/config"
	"github.com/caracal-gw/caracal/internal/event"
	"github.com/caracal-gw/caracal/internal/kafkaopt"
)

// HeaderReplayed marks a record the replay produced; its value is how many
// times the record went through a replay.
const HeaderReplayed = "caracal-dlq-replayed"

// Action is what the replay does with one DLQ record.
type Action string

// The actions.
const (
	// Replayed: re-produced to its source topic (or would be, in a dry run).
	Replayed Action = "replay"
	// Done: an earlier run already replayed it (below the source topic's
	// committed offset); not listed in the report.
	Done Action = "done"
	// Duplicate: another DLQ copy of the same source record from the same
	// consumer was replayed in this run.
	Duplicate Action = "duplicate"
	// Refused: the source topic is missing or not one of Caracal's topics.
	Refused Action = "refused"
	// Returned: the record came back to the DLQ after a replay (its
	// consumer rejected it again); replayed only with Force.
	Returned Action = "returned"
	// Undecodable: this binary cannot decode it and SkipUndecodable is set.
	Undecodable Action = "undecodable"
	// NotSelected: its source topic is not the one asked for (Topic); it
	// stays for a later run.
	NotSelected Action = "not-selected"
)

// Record is one DLQ record as the replay saw it.
type Record struct {
	Partition int32
	Offset    int64
	// Source is the topic, partition and offset of the rejected record.
	SourceTopic     string
	SourcePartition int32
	SourceOffset    int64
	Consumer        string
	Error           string
	// EventID is the decoded event id ("" when the value does not decode;
	// DecodeErr says why).
	EventID   string
	DecodeErr string
	// Replays is how many replays the record already went through.
	Replays int
	Action  Action
	// Note explains Refused.
	Note string
}

// Options say what to replay.
type Options struct {
	// DLQ is the dead-letter topic (default kafka.topics.dlq).
	DLQ string
	// GroupPrefix names the progress groups (default
	// kafka.consumer.groupPrefix): <prefix>-dlq-replay-<kind>.
	GroupPrefix string
	// Topic, when set, replays only records from this source topic (a
	// topic name or metering, decisions, audit); the others stay for a
	// later run.
	Topic string
	// Max stops after this many replayed records (0: no limit).
	Max int
	// DryRun lists what would be replayed; it produces and commits nothing.
	DryRun bool
	// Force also replays records that came back after a replay.
	Force bool
	// SkipUndecodable passes over records this binary cannot decode (they
	// are not replayed by later runs either).
	SkipUndecodable bool
	// Idle stops the run when no record arrives for this long before the
	// end offsets seen at the start are reached (default 10 s).
	Idle time.Duration
	// OnRecord sees every record handled (Done ones excepted), in DLQ order
	// per partition; for Replayed it is called once the record is
	// acknowledged (before, in a dry run).
	OnRecord func(Record)
	// Progress is called after each batch with the records read so far and
	// the total to read.
	Progress func(read, total int64, replayed int)
}

// Report counts a run.
type Report struct {
	Read                                                                int64
	Replayed, Done, Duplicates, Refused, Returned, Undecodable, Skipped int
	// Stopped says why the run ended before the end offsets ("" when it
	// reached them).
	Stopped string
}

// kind names one of Caracal's topics.
type kind struct {
	name, topic string
}

func kinds(cfg *config.Config) []kind {
	t := cfg.Kafka.Topics
	return []kind{{"metering", t.Metering}, {"decisions", t.Decisions}, {"audit", t.Audit}}
}

// Groups returns the progress groups, per source topic.
func Groups(cfg *config.Config, prefix string) map[string]string {
	if prefix == "" {
		prefix = cfg.Kafka.Consumer.GroupPrefix
	}
	out := map[string]string{}
	for _, k := range kinds(cfg) {
		out[k.topic] = prefix + "-dlq-replay-" + k.name
	}
	return out
}

// Replay re-produces the DLQ records from the progress groups' offsets up
// to the end offsets seen when it starts (records arriving during the run,
// such as replayed records rejected again, wait for the next run).
func Replay(ctx context.Context, cfg *config.Config, opt Options) (*Report, error) {
	if opt.DLQ == "" {
		opt.DLQ = cfg.Kafka.Topics.DLQ
	}
	if opt.Idle <= 0 {
		opt.Idle = 10 * time.Second
	}
	groups := Groups(cfg, opt.GroupPrefix)
	selected := map[string]bool{}
	for _, k := range kinds(cfg) {
		if opt.Topic == "" || opt.Topic == k.topic || opt.Topic == k.name {
			selected[k.topic] = true
		}
	}
	if len(selected) == 0 {
		names := []string{}
		for _, k := range kinds(cfg) {
			names = append(names, k.topic)
		}
		return nil, fmt.Errorf("--topic %q is not one of Caracal's topics (%v, or metering, decisions, audit)", opt.Topic, names)
	}
	admCl, err := kgo.NewClient(kafkaopt.Client(cfg)...)
	if err != nil {
		return nil, fmt.Errorf("cannot connect to Kafka: %w", err)
	}
	defer admCl.Close()
	adm := kadm.NewClient(admCl)

	ends, err := adm.ListEndOffsets(ctx, opt.DLQ)
	if err == nil {
		err = ends.Error()
	}
	if err != nil {
		return nil, fmt.Errorf("cannot list the end offsets of %s: %w", opt.DLQ, err)
	}
	end := map[int32]int64{}
	ends.Each(func(o kadm.ListedOffset) { end[o.Partition] = o.Offset })
	if len(end) == 0 {
		return nil, fmt.Errorf("topic %s has no partitions (does it exist?)", opt.DLQ)
	}
	// committed[topic][p]: the next DLQ offset the topic's group still has
	// to look at.
	committed := map[string]map[int32]int64{}
	for topic := range groups {
		g := groups[topic]
		offs, err := adm.FetchOffsets(ctx, g)
		if err == nil {
			err = offs.Error()
		}
		if err != nil {
			return nil, fmt.Errorf("cannot fetch the offsets of group %s: %w", g, err)
		}
		m := map[int32]int64{}
		offs.Each(func(o kadm.OffsetResponse) {
			if o.Topic == opt.DLQ {
				m[o.Partition] = o.At
			}
		})
		committed[topic] = m
	}
	// Start each partition at the lowest offset a selected group needs.
	start := map[int32]int64{}
	var total int64
	for p, e := range end {
		s := e
		for topic := range selected {
			s = min(s, committed[topic][p]) // a missing partition starts at 0
		}
		start[p] = s
		total += e - s
	}
	rep := &Report{}
	if total == 0 {
		return rep, nil
	}
	parts := map[int32]kgo.Offset{}
	for p, s := range start {
		if s < end[p] {
			parts[p] = kgo.NewOffset().At(s)
		}
	}
	cons, err := kgo.NewClient(append(kafkaopt.Client(cfg),
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{opt.DLQ: parts}),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()))...)
	if err != nil {
		return nil, fmt.Errorf("cannot connect to Kafka: %w", err)
	}
	defer cons.Close()
	var prod *kgo.Client
	if !opt.DryRun {
		// acks=all and the idempotent producer (franz-go's default), keyed
		// like the gateway's records.
		prod, err = kgo.NewClient(append(kafkaopt.Client(cfg),
			kgo.RequiredAcks(kgo.AllISRAcks()),
			kgo.RecordPartitioner(kgo.StickyKeyPartitioner(nil)),
			kgo.ProducerLinger(5*time.Millisecond))...)
		if err != nil {
			return nil, fmt.Errorf("cannot connect to Kafka: %w", err)
		}
		defer prod.Close()
	}

	r := &replayer{opt: opt, cfg: cfg, selected: selected, committed: committed, rep: rep,
		next: map[int32]int64{}, seen: map[string]bool{}, prod: prod, adm: adm, groups: groups}
	for p, s := range start {
		r.next[p] = s
	}
	done := func() bool {
		for p, e := range end {
			if r.next[p] < e {
				return false
			}
		}
		return true
	}
	for !done() {
		if opt.Max > 0 && rep.Replayed >= opt.Max {
			rep.Stopped = fmt.Sprintf("--max %d reached", opt.Max)
			break
		}
		pctx, cancel := context.WithTimeout(ctx, opt.Idle)
		fs := cons.PollRecords(pctx, 500)
		cancel()
		if err := ctx.Err(); err != nil {
			return rep, err
		}
		var fetchErr error
		fs.EachError(func(t string, p int32, err error) {
			if !errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, context.Canceled) {
				fetchErr = errors.Join(fetchErr, fmt.Errorf("cannot read %s/%d: %w", t, p, err))
			}
		})
		if fetchErr != nil {
			return rep, fetchErr
		}
		var batch []*kgo.Record
		fs.EachRecord(func(rec *kgo.Record) {
			if rec.Offset < end[rec.Partition] {
				batch = append(batch, rec)
			}
		})
		if len(batch) == 0 {
			if fs.NumRecords() == 0 {
				// Nothing within Idle: the rest of the range is control
				// records or gone.
				rep.Stopped = fmt.Sprintf("no record within %s before the end offsets", opt.Idle)
				break
			}
			continue
		}
		if err := r.batch(ctx, batch, end); err != nil {
			return rep, err
		}
		if opt.Progress != nil {
			opt.Progress(rep.Read, total, rep.Replayed)
		}
	}
	return rep, nil
}

type replayer struct {
	opt       Options
	cfg       *config.Config
	selected  map[string]bool
	groups    map[string]string
	committed map[string]map[int32]int64
	next      map[int32]int64
	seen      map[string]bool // source topic/partition/offset replayed in this run
	rep       *Report
	prod      *kgo.Client
	adm       *kadm.Client
}

// batch handles records (in order per partition): it produces the ones to
// replay, waits for their acknowledgement, then commits the progress groups.
func (r *replayer) batch(ctx context.Context, recs []*kgo.Record, end map[int32]int64) error {
	var out []*kgo.Record
	var listed []Record
	stopped := map[int32]bool{}
	read := map[int32]int64{} // next offset after the records handled, per partition
	for _, rec := range recs {
		if stopped[rec.Partition] || rec.Offset < r.next[rec.Partition] {
			continue
		}
		if r.opt.Max > 0 && r.rep.Replayed+len(out) >= r.opt.Max {
			stopped[rec.Partition] = true
			continue
		}
		d := r.inspect(rec)
		read[rec.Partition] = rec.Offset + 1
		r.rep.Read++
		switch d.Action {
		case Done:
			r.rep.Done++
			continue
		case Replayed:
			out = append(out, replayRecord(rec, d))
		case Duplicate:
			r.rep.Duplicates++
		case Refused:
			r.rep.Refused++
		case Returned:
			r.rep.Returned++
		case Undecodable:
			r.rep.Undecodable++
		case NotSelected:
			r.rep.Skipped++
		}
		listed = append(listed, d)
	}
	if !r.opt.DryRun && len(out) > 0 {
		if err := r.prod.ProduceSync(ctx, out...).FirstErr(); err != nil {
			return fmt.Errorf("cannot replay into the source topic (nothing committed; a new run replays this batch again): %w", err)
		}
	}
	r.rep.Replayed += len(out)
	if !r.opt.DryRun {
		if err := r.commit(ctx, read); err != nil {
			return err
		}
	}
	for p, n := range read {
		r.next[p] = n
	}
	for p := range stopped {
		// --max: leave the rest of this partition.
		r.next[p] = end[p]
	}
	if r.opt.OnRecord != nil {
		for _, d := range listed {
			r.opt.OnRecord(d)
		}
	}
	return nil
}

// commit moves every selected source topic's group past the records read.
func (r *replayer) commit(ctx context.Context, read map[int32]int64) error {
	topics := make([]string, 0, len(r.selected))
	for t := range r.selected {
		topics = append(topics, t)
	}
	slices.Sort(topics)
	for _, t := range topics {
		var offs kadm.Offsets
		for p, n := range read {
			if n > r.committed[t][p] {
				offs.AddOffset(r.opt.DLQ, p, n, -1)
			}
		}
		if len(offs) == 0 {
			continue
		}
		res, err := r.adm.CommitOffsets(ctx, r.groups[t], offs)
		if err == nil {
			err = res.Error()
		}
		if err != nil {
			return fmt.Errorf("records replayed but the progress of group %s is not committed (a new run replays this batch again): %w", r.groups[t], err)
		}
		for p, n := range read {
			if n > r.committed[t][p] {
				r.committed[t][p] = n
			}
		}
	}
	return nil
}

func header(rec *kgo.Record, key string) (string, bool) {
	for i := len(rec.Headers) - 1; i >= 0; i-- {
		if rec.Headers[i].Key == key {
			return string(rec.Headers[i].Value), true
		}
	}
	return "", false
}

// inspect decides what to do with rec.
func (r *replayer) inspect(rec *kgo.Record) Record {
	d := Record{Partition: rec.Partition, Offset: rec.Offset, SourcePartition: -1, SourceOffset: -1}
	d.SourceTopic, _ = header(rec, runner.HeaderTopic)
	if v, ok := header(rec, runner.HeaderPartition); ok {
		if n, err := strconv.ParseInt(v, 10, 32); err == nil {
			d.SourcePartition = int32(n)
		}
	}
	if v, ok := header(rec, runner.HeaderOffset); ok {
		if n, err := strconv.ParseInt(v, 10, 64); err == nil {
			d.SourceOffset = n
		}
	}
	d.Error, _ = header(rec, runner.HeaderError)
	d.Consumer, _ = header(rec, runner.HeaderConsumer)
	if v, ok := header(rec, HeaderReplayed); ok {
		d.Replays, _ = strconv.Atoi(v)
	}
	known := false
	for _, k := range kinds(r.cfg) {
		known = known || d.SourceTopic == k.topic
	}
	if known {
		d.EventID, d.DecodeErr = decodeID(r.cfg, d.SourceTopic, rec.Value)
	} else {
		d.DecodeErr = "not decoded (unknown source topic)"
	}
	switch {
	case d.SourceTopic == "":
		d.Action, d.Note = Refused, "no "+runner.HeaderTopic+" header: not written by a Caracal consumer"
		return d
	case !known:
		d.Action, d.Note = Refused, "source topic is not one of Caracal's (metering, decisions, audit)"
		return d
	case !r.selected[d.SourceTopic]:
		d.Action = NotSelected
		return d
	case rec.Offset < r.committed[d.SourceTopic][rec.Partition]:
		d.Action = Done
		return d
	}
	// Each consumer that rejected a record sent its own copy; each copy is
	// replayed for its consumer (runner.HeaderReplayFor), so a duplicate is
	// a second copy from the same consumer.
	src := d.SourceTopic + "/" + strconv.Itoa(int(d.SourcePartition)) + "@" + strconv.FormatInt(d.SourceOffset, 10) + "#" + d.Consumer
	switch {
	case d.SourceOffset >= 0 && r.seen[src]:
		d.Action = Duplicate
	case d.Replays > 0 && !r.opt.Force:
		d.Action, d.Note = Returned, "rejected again after a replay"
	case d.DecodeErr != "" && r.opt.SkipUndecodable:
		d.Action = Undecodable
	default:
		d.Action = Replayed
		if d.SourceOffset >= 0 {
			r.seen[src] = true
		}
	}
	return d
}

// decodeID returns the event id of a metering or audit record value.
func decodeID(cfg *config.Config, topic string, v []byte) (id, decodeErr string) {
	if topic == cfg.Kafka.Topics.Metering {
		var e event.Metering
		if err := event.DecodeMetering(v, &e); err != nil {
			return "", err.Error()
		}
		return e.ID.String(), ""
	}
	var a event.Audit
	if err := event.DecodeAudit(v, &a); err != nil {
		return "", err.Error()
	}
	return a.ID.String(), ""
}

// replayRecord is rec for its source topic: the key, the value and the
// headers it had before the DLQ, plus HeaderReplayed.
func replayRecord(rec *kgo.Record, d Record) *kgo.Record {
	h := make([]kgo.RecordHeader, 0, len(rec.Headers))
	for _, x := range rec.Headers {
		switch x.Key {
		case runner.HeaderTopic, runner.HeaderPartition, runner.HeaderOffset, runner.HeaderError, runner.HeaderConsumer, HeaderReplayed, runner.HeaderReplayFor:
			continue
		}
		h = append(h, x)
	}
	h = append(h, kgo.RecordHeader{Key: HeaderReplayed, Value: strconv.AppendInt(nil, int64(d.Replays+1), 10)})
	if d.Consumer != "" {
		// Only the consumer that rejected it takes it: the others already
		// counted the original.
		h = append(h, kgo.RecordHeader{Key: runner.HeaderReplayFor, Value: []byte(d.Consumer)})
	}
	return &kgo.Record{Topic: d.SourceTopic, Key: rec.Key, Value: rec.Value, Headers: h}
}
