package store

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/caracal-gw/caracal/internal/event"
)

// Querier is what the read-side loaders need; *pgxpool.Pool, *pgx.Conn and
// pgx.Tx satisfy it.
type Querier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// Execer is a Querier that also runs statements: what the control-data
// changes need.
type Execer interface {
	Querier
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
}

// TxBeginner is an Execer that opens transactions (a pool, a connection or a
// transaction, which gives a savepoint).
type TxBeginner interface {
	Execer
	Begin(ctx context.Context) (pgx.Tx, error)
}

// ErrNotFound is returned (wrapped) when the named control record does not
// exist.
var ErrNotFound = errors.New("not found")

func pgUUID(u event.UUID) pgtype.UUID { return pgtype.UUID{Bytes: u, Valid: true} }

// uuidText returns the canonical form, or "" for an invalid (NULL) uuid.
func uuidText(u pgtype.UUID) string {
	if !u.Valid {
		return ""
	}
	return event.UUID(u.Bytes).String()
}

// pgErr returns the PostgreSQL error in err, if any.
func pgErr(err error) *pgconn.PgError {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		return pe
	}
	return nil
}

// isUnique reports whether err is a unique violation.
func isUnique(err error) bool {
	pe := pgErr(err)
	return pe != nil && pe.Code == "23505"
}

// dbError turns a constraint violation into one line naming the rule that
// failed; other errors are wrapped as "cannot <what>: ...".
func dbError(what string, err error) error {
	if pe := pgErr(err); pe != nil {
		switch pe.Code {
		case "23514":
			return fmt.Errorf("cannot %s: a value breaks the rule %s", what, pe.ConstraintName)
		case "23503":
			return fmt.Errorf("cannot %s: it refers to a record that does not exist (%s)", what, pe.ConstraintName)
		case "23505":
			return fmt.Errorf("cannot %s: it already exists (%s)", what, pe.ConstraintName)
		case "P0001":
			return fmt.Errorf("cannot %s: %s", what, pe.Message)
		}
	}
	return fmt.Errorf("cannot %s: %w", what, err)
}

// ResolveAgent returns the id of the agent named ref, or whose id ref is.
func ResolveAgent(ctx context.Context, q Querier, ref string) (event.UUID, error) {
	var id pgtype.UUID
	var err error
	if u, perr := event.ParseUUID([]byte(ref)); perr == nil {
		err = q.QueryRow(ctx, `SELECT id FROM agents WHERE id = $1 OR name = $2`, pgUUID(u), ref).Scan(&id)
	} else {
		err = q.QueryRow(ctx, `SELECT id FROM agents WHERE name = $1`, ref).Scan(&id)
	}
	if errors.Is(err, pgx.ErrNoRows) {
		return event.UUID{}, fmt.Errorf("agent %q %w", ref, ErrNotFound)
	}
	if err != nil {
		return event.UUID{}, fmt.Errorf("cannot look up agent %q: %w", ref, err)
	}
	return event.UUID(id.Bytes), nil
}
