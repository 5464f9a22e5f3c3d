package recovery

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/twmb/franz-go/pkg/kadm"
	"golang.org/x/mod/sumdb/note"

	"github.com/caracal-gw/caracal/consumers/ledger"
	"github.com/caracal-gw/caracal/internal/budget"
	"github.com/caracal-gw/caracal/internal/event"
)

// LatestID names the newest snapshot, as the guide writes it.
const LatestID = "snapshot-latest"

// SpendBucket is one agent's committed spend (with its descendants') in one
// bucket of its tree.
type SpendBucket struct {
	Root   string `json:"root"`
	Agent  string `json:"agent"`
	Gran   string `json:"gran"`
	Bucket int64  `json:"bucket"`
	Micros int64  `json:"micros"`
}

// GroupOffset is a consumer group's next offset of one partition.
type GroupOffset struct {
	Source    string `json:"source"` // "kafka" or "postgres" (consumer_offsets)
	Group     string `json:"group"`
	Topic     string `json:"topic"`
	Partition int32  `json:"partition"`
	Next      int64  `json:"next"`
}

// Snapshot is one row of the snapshots table.
type Snapshot struct {
	ID              string        `json:"id"`
	CreatedAt       time.Time     `json:"created_at"`
	LedgerSize      int64         `json:"ledger_size"`
	TreeSize        int64         `json:"tree_size"`
	RootHash        []byte        `json:"root_hash"`
	Checkpoint      string        `json:"checkpoint"`
	Topic           string        `json:"topic"`
	AggregatorGroup string        `json:"aggregator_group"`
	Spend           []SpendBucket `json:"spend"`
	Offsets         []GroupOffset `json:"offsets"`
	SpendMicros     int64         `json:"spend_micros"`
	Entries         int64         `json:"entries"`
}

// Resume returns the aggregator's resume offsets the spend corresponds to.
func (s *Snapshot) Resume() map[int32]int64 {
	out := map[int32]int64{}
	for _, o := range s.Offsets {
		if o.Source == "kafka" && o.Group == s.AggregatorGroup && o.Topic == s.Topic {
			out[o.Partition] = o.Next
		}
	}
	return out
}

// SnapshotOptions say which groups the snapshot is about.
type SnapshotOptions struct {
	Topic, Group, LedgerGroup string
	// Topics whose group offsets are recorded (default: Topic).
	Topics []string
	Wait   time.Duration
	Now    time.Time
}

// CreateSnapshot records the ledger size and latest checkpoint, the spend
// totals at the aggregator's resume offsets, and every group's offsets. The
// spend is summed from the ledger below the aggregator's committed offsets,
// which is what Redis holds for them (the reconcile invariant), so the
// aggregator need not stop: restoring puts the totals and those offsets
// back together.
func CreateSnapshot(ctx context.Context, pool *pgxpool.Pool, adm *kadm.Client, opt SnapshotOptions) (*Snapshot, error) {
	if opt.Now.IsZero() {
		opt.Now = time.Now()
	}
	if opt.Wait <= 0 {
		opt.Wait = 2 * time.Minute
	}
	if len(opt.Topics) == 0 {
		opt.Topics = []string{opt.Topic}
	}
	resume, err := GroupResume(ctx, adm, opt.Group, opt.Topic)
	if err != nil {
		return nil, err
	}
	if err := waitLedger(ctx, pool, opt.LedgerGroup, opt.Topic, resume, opt.Wait); err != nil {
		return nil, err
	}
	tot, err := ComputeTotals(ctx, pool, resume, opt.Now)
	if err != nil {
		return nil, err
	}
	s := &Snapshot{ID: "snap-" + opt.Now.UTC().Format("20060102T150405.000") + "Z", CreatedAt: opt.Now,
		Topic: opt.Topic, AggregatorGroup: opt.Group, SpendMicros: tot.Micros, Entries: tot.Entries}
	for root, list := range tot.ByRoot {
		for _, b := range list {
			s.Spend = append(s.Spend, SpendBucket{Root: root.String(), Agent: b.Agent.String(), Gran: string(rune(b.Gran)), Bucket: b.Bucket, Micros: b.Micros})
		}
	}
	sort.Slice(s.Spend, func(i, j int) bool {
		a, b := s.Spend[i], s.Spend[j]
		if a.Agent != b.Agent {
			return a.Agent < b.Agent
		}
		if a.Gran != b.Gran {
			return a.Gran < b.Gran
		}
		return a.Bucket < b.Bucket
	})
	for p, next := range resume {
		s.Offsets = append(s.Offsets, GroupOffset{Source: "kafka", Group: opt.Group, Topic: opt.Topic, Partition: p, Next: next})
	}
	more, err := allOffsets(ctx, pool, adm, opt.Group, opt.Topics)
	if err != nil {
		return nil, err
	}
	s.Offsets = append(s.Offsets, more...)
	if err := pool.QueryRow(ctx, `SELECT next_seq FROM ledger_counter`).Scan(&s.LedgerSize); err != nil {
		return nil, fmt.Errorf("cannot read the ledger size: %w", err)
	}
	err = pool.QueryRow(ctx, `SELECT tree_size, root_hash, note FROM merkle_checkpoints ORDER BY tree_size DESC LIMIT 1`).Scan(&s.TreeSize, &s.RootHash, &s.Checkpoint)
	if err != nil && !errors.Is(err, pgx.ErrNoRows) {
		return nil, fmt.Errorf("cannot read the latest checkpoint: %w", err)
	}
	if err := save(ctx, pool, s); err != nil {
		return nil, err
	}
	return s, nil
}

// allOffsets lists every other Kafka group's committed offsets on topics and
// every row of consumer_offsets.
func allOffsets(ctx context.Context, pool *pgxpool.Pool, adm *kadm.Client, skip string, topics []string) ([]GroupOffset, error) {
	var out []GroupOffset
	groups, err := adm.ListGroups(ctx)
	if err != nil {
		return nil, fmt.Errorf("cannot list consumer groups: %w", err)
	}
	want := map[string]bool{}
	for _, t := range topics {
		want[t] = true
	}
	for _, g := range groups.Groups() {
		if g == skip {
			continue
		}
		offs, err := adm.FetchOffsets(ctx, g)
		if err != nil {
			return nil, fmt.Errorf("cannot fetch the offsets of group %s: %w", g, err)
		}
		offs.Each(func(o kadm.OffsetResponse) {
			if o.Err == nil && want[o.Topic] && o.At >= 0 {
				out = append(out, GroupOffset{Source: "kafka", Group: g, Topic: o.Topic, Partition: o.Partition, Next: o.At})
			}
		})
	}
	rows, err := pool.Query(ctx, `SELECT group_id, topic, partition, next_offset FROM consumer_offsets ORDER BY 1, 2, 3`)
	if err != nil {
		return nil, fmt.Errorf("cannot read consumer_offsets: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		o := GroupOffset{Source: "postgres"}
		if err := rows.Scan(&o.Group, &o.Topic, &o.Partition, &o.Next); err != nil {
			return nil, fmt.Errorf("cannot read consumer_offsets: %w", err)
		}
		out = append(out, o)
	}
	return out, rows.Err()
}

func save(ctx context.Context, pool *pgxpool.Pool, s *Snapshot) error {
	spend, err := json.Marshal(s.Spend)
	if err != nil {
		return fmt.Errorf("cannot encode the snapshot: %w", err)
	}
	offs, err := json.Marshal(s.Offsets)
	if err != nil {
		return fmt.Errorf("cannot encode the snapshot: %w", err)
	}
	_, err = pool.Exec(ctx, `INSERT INTO snapshots (id, created_at, ledger_size, tree_size, root_hash, checkpoint, topic, aggregator_group, spend, offsets, spend_micros, entries)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)`,
		s.ID, s.CreatedAt, s.LedgerSize, s.TreeSize, s.RootHash, s.Checkpoint, s.Topic, s.AggregatorGroup, spend, offs, s.SpendMicros, s.Entries)
	if err != nil {
		return fmt.Errorf("cannot store snapshot %s: %w", s.ID, err)
	}
	return nil
}

const snapshotCols = `id, created_at, ledger_size, tree_size, root_hash, checkpoint, topic, aggregator_group, spend, offsets, spend_micros, entries`

func scanSnapshot(row pgx.Row) (*Snapshot, error) {
	s := &Snapshot{}
	var spend, offs []byte
	if err := row.Scan(&s.ID, &s.CreatedAt, &s.LedgerSize, &s.TreeSize, &s.RootHash, &s.Checkpoint, &s.Topic, &s.AggregatorGroup, &spend, &offs, &s.SpendMicros, &s.Entries); err != nil {
		return nil, err
	}
	if err := json.Unmarshal(spend, &s.Spend); err != nil {
		return nil, fmt.Errorf("cannot decode snapshot %s: %w", s.ID, err)
	}
	if err := json.Unmarshal(offs, &s.Offsets); err != nil {
		return nil, fmt.Errorf("cannot decode snapshot %s: %w", s.ID, err)
	}
	return s, nil
}

// GetSnapshot loads a snapshot by id; LatestID is the newest.
func GetSnapshot(ctx context.Context, q Querier, id string) (*Snapshot, error) {
	var row pgx.Row
	if id == LatestID {
		row = q.QueryRow(ctx, `SELECT `+snapshotCols+` FROM snapshots ORDER BY created_at DESC, id DESC LIMIT 1`)
	} else {
		row = q.QueryRow(ctx, `SELECT `+snapshotCols+` FROM snapshots WHERE id = $1`, id)
	}
	s, err := scanSnapshot(row)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, fmt.Errorf("cannot find snapshot %s", id)
	}
	if err != nil {
		return nil, fmt.Errorf("cannot load snapshot %s: %w", id, err)
	}
	return s, nil
}

// ListSnapshots returns the snapshots, newest first (without their spend
// and offsets).
func ListSnapshots(ctx context.Context, q Querier) ([]Snapshot, error) {
	rows, err := q.Query(ctx, `SELECT id, created_at, ledger_size, tree_size, spend_micros, entries, jsonb_array_length(offsets) FROM snapshots ORDER BY created_at DESC, id DESC`)
	if err != nil {
		return nil, fmt.Errorf("cannot list snapshots: %w", err)
	}
	defer rows.Close()
	var out []Snapshot
	for rows.Next() {
		var s Snapshot
		var n int
		if err := rows.Scan(&s.ID, &s.CreatedAt, &s.LedgerSize, &s.TreeSize, &s.SpendMicros, &s.Entries, &n); err != nil {
			return nil, fmt.Errorf("cannot list snapshots: %w", err)
		}
		s.Offsets = make([]GroupOffset, n)
		out = append(out, s)
	}
	return out, rows.Err()
}

// Prune deletes all but the newest keep snapshots and returns how many went.
func Prune(ctx context.Context, pool *pgxpool.Pool, keep int) (int64, error) {
	tag, err := pool.Exec(ctx, `DELETE FROM snapshots WHERE id NOT IN (SELECT id FROM snapshots ORDER BY created_at DESC, id DESC LIMIT $1)`, keep)
	if err != nil {
		return 0, fmt.Errorf("cannot prune snapshots: %w", err)
	}
	return tag.RowsAffected(), nil
}

// VerifySnapshot checks the snapshot's signed checkpoint with v, that the
// ledger still holds the same checkpoint, and recomputes the ledger up to it
// (ledger.Verify): the ledger the snapshot saw is intact.
func VerifySnapshot(ctx context.Context, pool *pgxpool.Pool, s *Snapshot, v note.Verifier, progress func(done, total int64)) error {
	if s.TreeSize == 0 {
		return nil
	}
	cp, err := ledger.OpenCheckpoint(s.Checkpoint, v)
	if err != nil {
		return fmt.Errorf("snapshot %s: cannot verify its checkpoint: %w", s.ID, err)
	}
	if cp.Size != s.TreeSize {
		return fmt.Errorf("snapshot %s: checkpoint size %d, snapshot says %d", s.ID, cp.Size, s.TreeSize)
	}
	var stored string
	if err := pool.QueryRow(ctx, `SELECT note FROM merkle_checkpoints WHERE tree_size = $1`, s.TreeSize).Scan(&stored); err != nil {
		return fmt.Errorf("snapshot %s: the ledger has no checkpoint at size %d: %w", s.ID, s.TreeSize, err)
	}
	if stored != s.Checkpoint {
		return fmt.Errorf("snapshot %s: the ledger's checkpoint at size %d differs from the snapshot's", s.ID, s.TreeSize)
	}
	rep, err := ledger.Verify(ctx, pool, v, 0, s.TreeSize, progress)
	if err != nil {
		return err
	}
	if rep.Problem != nil {
		return fmt.Errorf("snapshot %s: ledger verification failed: %w", s.ID, rep.Problem)
	}
	if rep.To < s.TreeSize {
		return fmt.Errorf("snapshot %s: the ledger's tree has %d entries, the snapshot %d", s.ID, rep.To, s.TreeSize)
	}
	return nil
}

// RestoreOptions tune Restore.
type RestoreOptions struct {
	ReadyKey string
	// AllGroups also puts back the Kafka offsets of every other group in the
	// snapshot (their consumers must be stopped).
	AllGroups bool
	Progress  func(done, total int)
}

// Restore puts the snapshot's spend totals back in Redis (every tree of the
// snapshot and of the agents table is reset first), sets the fences just
// below the aggregator's offsets and commits those offsets for the
// aggregator's group (stopped: Kafka refuses commits to an active group).
// Verify the snapshot first (VerifySnapshot).
func Restore(ctx context.Context, pool *pgxpool.Pool, st *budget.Store, adm *kadm.Client, s *Snapshot, opt RestoreOptions) error {
	if opt.ReadyKey == "" {
		opt.ReadyKey = DefaultReadyKey
	}
	byRoot := map[event.UUID][]budget.BucketTotal{}
	for _, b := range s.Spend {
		root, err1 := event.ParseUUID([]byte(b.Root))
		agent, err2 := event.ParseUUID([]byte(b.Agent))
		if err := errors.Join(err1, err2); err != nil || len(b.Gran) != 1 {
			return fmt.Errorf("snapshot %s: bad spend entry %+v: %v", s.ID, b, err)
		}
		byRoot[root] = append(byRoot[root], budget.BucketTotal{Agent: agent, Gran: budget.Gran(b.Gran[0]), Bucket: b.Bucket, Micros: b.Micros})
	}
	roots, err := Roots(ctx, pool)
	if err != nil {
		return err
	}
	for r := range byRoot {
		if !containsUUID(roots, r) {
			roots = append(roots, r)
		}
	}
	if err := ClearReady(ctx, st.Client(), opt.ReadyKey); err != nil {
		return err
	}
	resume := s.Resume()
	if err := commitOffsets(ctx, adm, s, opt.AllGroups); err != nil {
		return err
	}
	for i, root := range roots {
		if err := applyRoot(ctx, st, root, byRoot[root], s.AggregatorGroup, s.Topic, resume); err != nil {
			return err
		}
		if opt.Progress != nil {
			opt.Progress(i+1, len(roots))
		}
	}
	return MarkReady(ctx, st.Client(), opt.ReadyKey)
}

func commitOffsets(ctx context.Context, adm *kadm.Client, s *Snapshot, all bool) error {
	byGroup := map[string]*kadm.Offsets{}
	for _, o := range s.Offsets {
		if o.Source != "kafka" || (!all && o.Group != s.AggregatorGroup) {
			continue
		}
		if byGroup[o.Group] == nil {
			byGroup[o.Group] = &kadm.Offsets{}
		}
		byGroup[o.Group].AddOffset(o.Topic, o.Partition, o.Next, -1)
	}
	for g, offs := range byGroup {
		res, err := adm.CommitOffsets(ctx, g, *offs)
		if err == nil {
			err = res.Error()
		}
		if err != nil {
			return fmt.Errorf("cannot put back the offsets of group %s (stop its consumers first): %w", g, err)
		}
	}
	return nil
}
