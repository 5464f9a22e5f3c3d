package main

import (
	"strconv"
	"time"

	"github.com/spf13/cobra"

	"github.com/caracal-gw/caracal/consumers/audit"
)

func init() { extraCommands = append(extraCommands, adminCommand(newAuditCmd)) }

func newAuditCmd(a *app) *cobra.Command {
	c := &cobra.Command{Use: "audit", Short: "Query the audit log (policy decisions, authentication failures)"}
	var agent, typ, from, to string
	var limit int
	q := &cobra.Command{
		Use:   "query",
		Short: "List audit records, newest first (filters: --agent, --type, --from/--to)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, now := cmd.Context(), time.Now()
			f := audit.Filter{Type: typ, Limit: limit}
			var err error
			if f.Agent, err = a.agentRef(ctx, agent); err != nil {
				return err
			}
			if f.From, err = parseWhen("from", from, now); err != nil {
				return err
			}
			if f.To, err = parseWhen("to", to, now); err != nil {
				return err
			}
			pool, err := a.db(ctx)
			if err != nil {
				return err
			}
			rows, err := audit.Query(ctx, pool, f)
			if err != nil {
				return err
			}
			cells := make([][]string, len(rows))
			for i, r := range rows {
				cells[i] = []string{cellTime(r.Time), r.Type, cellOr(r.Agent, "-"), cellOr(r.Route, "-"), r.Reason,
					strconv.Itoa(r.Status), cellOr(r.ClientIP, "-"), cellOr(r.KeyPrefix, "-")}
			}
			if rows == nil {
				rows = []audit.Row{}
			}
			return a.print(rows, []string{"TIME", "TYPE", "AGENT", "ROUTE", "REASON", "STATUS", "CLIENT", "KEY"}, cells)
		},
	}
	f := q.Flags()
	f.StringVar(&agent, "agent", "", "agent name or id")
	f.StringVar(&typ, "type", "", "record type: decision, auth_failure, ...")
	f.StringVar(&from, "from", "", "window start: RFC 3339, YYYY-MM-DD or a duration before now (24h)")
	f.StringVar(&to, "to", "", "window end (exclusive)")
	f.IntVar(&limit, "limit", 100, "at most this many records")
	c.AddCommand(q)
	return c
}
