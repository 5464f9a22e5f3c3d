package cache

import (
	"context"
	"encoding/json"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/caracal-gw/caracal/internal/event"
)

// Channel is the NOTIFY channel the schema's triggers write to.
const Channel = "caracal_control"

type notice struct {
	Table   string `json:"table"`
	Op      string `json:"op"`
	ID      string `json:"id"`
	AgentID string `json:"agent_id"`
}

// Listener keeps a dedicated connection listening for control-data changes
// and applies them to the cache. It must be a direct connection: LISTEN does
// not survive PgBouncer's transaction pooling.
type Listener struct {
	url       string
	c         *Cache
	connected atomic.Bool
	// Applied counts notifications applied (tests wait on it).
	Applied atomic.Int64
}

// NewListener returns a listener for the database at url.
func NewListener(url string, c *Cache) *Listener { return &Listener{url: url, c: c} }

// Ready reports whether the listener is connected, so cached entries can be
// trusted to be dropped on change.
func (l *Listener) Ready() bool { return l.connected.Load() }

// Run listens until ctx ends, reconnecting with backoff. After every
// (re)connect it drops the whole cache and reloads the tables, since
// notifications sent while disconnected were lost.
func (l *Listener) Run(ctx context.Context) {
	backoff := 100 * time.Millisecond
	for ctx.Err() == nil {
		err := l.session(ctx)
		l.connected.Store(false)
		if ctx.Err() != nil {
			return
		}
		slog.Warn("control-data listener disconnected; retrying", "err", err, "in", backoff)
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff):
		}
		backoff = min(backoff*2, 5*time.Second)
	}
}

func (l *Listener) session(ctx context.Context) error {
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	conn, err := pgx.Connect(cctx, l.url)
	cancel()
	if err != nil {
		return err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	if _, err := conn.Exec(ctx, "LISTEN "+Channel); err != nil {
		return err
	}
	l.c.DropAll()
	if err := l.c.Reload(ctx); err != nil {
		return err
	}
	l.connected.Store(true)
	for {
		n, err := conn.WaitForNotification(ctx)
		if err != nil {
			return err
		}
		l.apply(ctx, n.Payload)
		l.Applied.Add(1)
	}
}

func (l *Listener) apply(ctx context.Context, payload string) {
	var n notice
	if err := json.Unmarshal([]byte(payload), &n); err != nil {
		slog.Warn("unreadable control notification; dropping the whole cache", "payload", payload)
		l.c.DropAll()
		return
	}
	switch n.Table {
	case "agents", "policies", "allow_lists":
		id, err := event.ParseUUID([]byte(n.AgentID))
		if err != nil {
			l.c.DropAll()
			return
		}
		l.c.DropAgent(id)
	case "api_keys":
		l.c.DropKeys()
	case "routes", "pricebook", "jwt_issuers", "mtls_identities":
		if err := l.c.Reload(ctx); err != nil {
			slog.Error("cannot reload control tables after a change", "table", n.Table, "err", err)
		}
	default:
		l.c.DropAll()
	}
}
