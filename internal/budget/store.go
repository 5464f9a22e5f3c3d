package budget

import (
	"context"
	"crypto/tls"
	"fmt"
	"strings"
	"time"

	"github.com/redis/rueidis"

	"github.com/caracal-gw/caracal/internal/config"
	"github.com/caracal-gw/caracal/internal/control"
	"github.com/caracal-gw/caracal/internal/event"
)

// Store runs the budget scripts against Redis.
type Store struct {
	c rueidis.Client
}

// NewStore returns a Store on c; the caller owns and closes c.
func NewStore(c rueidis.Client) *Store { return &Store{c: c} }

// Client returns the Redis client of s.
func (s *Store) Client() rueidis.Client { return s.c }

// NewClient connects to the Redis of cfg (standalone or cluster, as
// rueidis detects it).
func NewClient(cfg config.Redis) (rueidis.Client, error) {
	opt := rueidis.ClientOption{
		InitAddress:      cfg.Addrs,
		Username:         cfg.Username,
		Password:         cfg.Password,
		SelectDB:         cfg.DB,
		DisableCache:     true,
		ConnWriteTimeout: cfg.WriteTimeout.D(),
	}
	opt.Dialer.Timeout = cfg.DialTimeout.D()
	if cfg.TLS {
		opt.TLSConfig = &tls.Config{MinVersion: tls.VersionTLS12}
	}
	c, err := rueidis.NewClient(opt)
	if err != nil {
		return nil, fmt.Errorf("cannot connect to redis %s: %w", strings.Join(cfg.Addrs, ","), err)
	}
	return c, nil
}

// Link is one agent of a chain with the policies that limit it.
type Link struct {
	Agent    event.UUID
	Policies []control.Policy
}

// ReserveRequest asks for headroom on the agent Chain[0] and all its
// ancestors (Chain[1:], parent first).
type ReserveRequest struct {
	Root  event.UUID
	Chain []Link
	// Owner names the lease holder (one gateway process).
	Owner     string
	Requested int64
	// MinGrant: a grant smaller than this is refused (0 granted).
	MinGrant int64
	LeaseTTL time.Duration
	// Now picks the window buckets.
	Now time.Time
}

// Grant is the answer of Reserve.
type Grant struct {
	Granted int64
	// Headroom is the smallest headroom over every window of the chain
	// before the grant (limit - committed - reserved); meaningless when
	// Unlimited.
	Headroom  int64
	Unlimited bool
	// Bound is the agent and policy whose window had the smallest headroom.
	Bound       event.UUID
	BoundPolicy control.Policy
	// Held: the owner held a lease before the call (false when it was never
	// taken, fully released or reclaimed).
	Held bool
	// Lease is the lease amount after the call: grants minus releases minus
	// aggregated charges; negative when requests cost more than it held.
	Lease int64
}

func validPolicy(p control.Policy) error {
	if p.LimitMicros < 0 || p.LimitMicros > MaxLimitMicros {
		return fmt.Errorf("cannot use policy %s: limit %d is outside [0, %d]", p.ID, p.LimitMicros, int64(MaxLimitMicros))
	}
	if p.Window < control.Hourly || p.Window > control.Monthly {
		return fmt.Errorf("cannot use policy %s: unknown window %d", p.ID, p.Window)
	}
	return nil
}

func (r *ReserveRequest) args() ([]string, error) {
	if len(r.Chain) == 0 || r.Owner == "" || strings.ContainsAny(r.Owner, " \t\n") {
		return nil, fmt.Errorf("cannot reserve: empty chain or bad owner %q", r.Owner)
	}
	if r.Requested < 0 || r.Requested > MaxLimitMicros {
		return nil, fmt.Errorf("cannot reserve %d micro-units: outside [0, %d]", r.Requested, int64(MaxLimitMicros))
	}
	ids := make([]string, len(r.Chain))
	for i, l := range r.Chain {
		ids[i] = l.Agent.String()
	}
	args := []string{prefix(r.Root), leaseMember(r.Chain[0].Agent, r.Owner), itoa(r.Requested),
		itoa(max(r.MinGrant, 1)), itoa(r.LeaseTTL.Milliseconds()), strings.Join(ids, " "), itoa(int64(len(r.Chain)))}
	for i, l := range r.Chain {
		args = append(args, ids[i], itoa(int64(len(l.Policies))))
		for _, p := range l.Policies {
			if err := validPolicy(p); err != nil {
				return nil, err
			}
			sp := spanOf(p.Window, p.Rolling, r.Now)
			args = append(args, itoa(p.LimitMicros), string(rune(sp.g)), itoa(int64(sp.n)), itoa(sp.newest))
		}
	}
	return args, nil
}

// Reserve grants min(Requested, smallest headroom) into the owner's lease of
// Chain[0], or 0 when that is below MinGrant, and renews the lease deadline.
// It also reclaims expired leases of the tree.
func (s *Store) Reserve(ctx context.Context, r *ReserveRequest) (Grant, error) {
	args, err := r.args()
	if err != nil {
		return Grant{}, err
	}
	v, err := reserveScript.Exec(ctx, s.c, []string{leasesKey(args[0])}, args).AsIntSlice()
	if err != nil {
		return Grant{}, fmt.Errorf("cannot reserve budget of agent %s: %w", r.Chain[0].Agent, err)
	}
	if len(v) != 7 {
		return Grant{}, fmt.Errorf("cannot reserve budget: unexpected reply of %d values", len(v))
	}
	g := Grant{Granted: v[0], Headroom: v[1], Held: v[4] == 1, Unlimited: v[5] == 1, Lease: v[6]}
	if a, p := v[2], v[3]; !g.Unlimited && a >= 0 && int(a) < len(r.Chain) && p >= 0 && int(p) < len(r.Chain[a].Policies) {
		g.Bound, g.BoundPolicy = r.Chain[a].Agent, r.Chain[a].Policies[p]
	}
	return g, nil
}

// Release gives back up to unused micro-units of the owner's lease of agent.
// The rest of the lease (charged to requests the aggregator has not applied
// yet) stays reserved until applied or until drain passes. It returns what
// was released.
func (s *Store) Release(ctx context.Context, root, agent event.UUID, owner string, unused int64, drain time.Duration) (int64, error) {
	pfx := prefix(root)
	args := []string{pfx, leaseMember(agent, owner), itoa(max(unused, 0)), itoa(drain.Milliseconds())}
	v, err := releaseScript.Exec(ctx, s.c, []string{leasesKey(pfx)}, args).AsInt64()
	if err != nil {
		return 0, fmt.Errorf("cannot release budget lease of agent %s: %w", agent, err)
	}
	return v, nil
}

// Ping checks that Redis answers (for /readyz).
func (s *Store) Ping(ctx context.Context) error {
	if err := s.c.Do(ctx, s.c.B().Ping().Build()).Error(); err != nil {
		return fmt.Errorf("cannot reach redis: %w", err)
	}
	return nil
}
