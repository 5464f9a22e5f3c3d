package main

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/spf13/cobra"

	"github.com/caracal-gw/caracal/internal/store"
)

func newDBCmd(a *app) *cobra.Command {
	db := &cobra.Command{Use: "db", Short: "Database schema administration"}
	mig := &cobra.Command{Use: "migrate", Short: "Apply, undo or list the embedded schema migrations"}
	up := &cobra.Command{
		Use:   "up",
		Short: "Apply every pending migration (a no-op when none is pending)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			pool, err := a.migrationDB(cmd.Context())
			if err != nil {
				return err
			}
			done, err := store.MigrateUp(cmd.Context(), pool)
			if err != nil {
				return err
			}
			if len(done) == 0 {
				fmt.Fprintln(a.stdout, "schema is up to date")
			}
			for _, v := range done {
				fmt.Fprintf(a.stdout, "applied %04d\n", v)
			}
			return nil
		},
	}
	var steps int
	down := &cobra.Command{
		Use:   "down",
		Short: "Undo the latest migrations (--steps, default 1)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			pool, err := a.migrationDB(cmd.Context())
			if err != nil {
				return err
			}
			done, err := store.MigrateDown(cmd.Context(), pool, steps)
			if err != nil {
				return err
			}
			if len(done) == 0 {
				fmt.Fprintln(a.stdout, "no migration to undo")
			}
			for _, v := range done {
				fmt.Fprintf(a.stdout, "undid %04d\n", v)
			}
			return nil
		},
	}
	down.Flags().IntVar(&steps, "steps", 1, "how many migrations to undo")
	status := &cobra.Command{
		Use:   "status",
		Short: "List migrations and when each was applied",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			pool, err := a.migrationDB(cmd.Context())
			if err != nil {
				return err
			}
			st, err := store.MigrationState(cmd.Context(), pool)
			if err != nil {
				return err
			}
			type row struct {
				Version   int        `json:"version"`
				Name      string     `json:"name"`
				AppliedAt *time.Time `json:"applied_at"`
			}
			var out []row
			var rows [][]string
			for _, s := range st {
				r := row{Version: s.Version, Name: s.Name}
				applied := "pending"
				if !s.AppliedAt.IsZero() {
					t := s.AppliedAt
					r.AppliedAt = &t
					applied = t.UTC().Format(time.RFC3339)
				}
				out = append(out, r)
				rows = append(rows, []string{strconv.Itoa(s.Version), s.Name, applied})
			}
			return a.print(out, []string{"VERSION", "NAME", "APPLIED"}, rows)
		},
	}
	mig.AddCommand(up, down, status)
	db.AddCommand(mig)
	return db
}

// migrationDB opens the pool the migrate commands use: behind PgBouncer
// (database.pgbouncer with database.directURL) the direct connection, since
// the migration lock is a session-level advisory lock that transaction
// pooling would hand to whichever server connection is free.
func (a *app) migrationDB(ctx context.Context) (*pgxpool.Pool, error) {
	c, err := a.config()
	if err != nil {
		return nil, err
	}
	if !c.Database.PgBouncer || c.Database.DirectURL == "" || a.pool != nil {
		return a.db(ctx)
	}
	d := *c
	d.Database.URL, d.Database.PgBouncer = c.Database.DirectURL, false
	p, err := store.Open(ctx, &d)
	if err != nil {
		return nil, fmt.Errorf("database.directURL: %w", err)
	}
	a.pool = p
	return p, nil
}
