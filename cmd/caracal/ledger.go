package main

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/spf13/cobra"

	"github.com/caracal-gw/caracal/consumers/ledger"
	"github.com/caracal-gw/caracal/internal/event"
	"github.com/caracal-gw/caracal/internal/store"
)

func init() { extraCommands = append(extraCommands, adminCommand(newLedgerCmd)) }

// ledgerFilter holds the filter flags of ledger query and summary.
type ledgerFilter struct {
	agent, from, to, route, model string
	subtree                       bool
	limit                         int
}

func (lf *ledgerFilter) flags(c *cobra.Command, withSubtree bool) {
	f := c.Flags()
	f.StringVar(&lf.agent, "agent", "", "agent name or id")
	f.StringVar(&lf.from, "from", "", "window start: RFC 3339, YYYY-MM-DD or a duration before now (24h)")
	f.StringVar(&lf.to, "to", "", "window end (exclusive), same forms as --from")
	f.StringVar(&lf.route, "route", "", "route name")
	f.StringVar(&lf.model, "model", "", "model name")
	if withSubtree {
		f.BoolVar(&lf.subtree, "subtree", false, "include the agent's descendants")
		f.IntVar(&lf.limit, "limit", 100, "at most this many entries, newest first")
	}
}

func (lf *ledgerFilter) build(ctx context.Context, a *app) (ledger.Filter, error) {
	now := time.Now()
	f := ledger.Filter{Subtree: lf.subtree, Route: lf.route, Model: lf.model, Limit: lf.limit}
	var err error
	if f.Agent, err = a.agentRef(ctx, lf.agent); err != nil {
		return f, err
	}
	if f.From, err = parseWhen("from", lf.from, now); err != nil {
		return f, err
	}
	if f.To, err = parseWhen("to", lf.to, now); err != nil {
		return f, err
	}
	return f, nil
}

func newLedgerCmd(a *app) *cobra.Command {
	c := &cobra.Command{Use: "ledger", Short: "Query the metering ledger"}
	var qf, sf ledgerFilter
	q := &cobra.Command{
		Use:   "query",
		Short: "List ledger entries (filters: --agent [--subtree], --from/--to, --route, --model)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			f, err := qf.build(cmd.Context(), a)
			if err != nil {
				return err
			}
			pool, err := a.db(cmd.Context())
			if err != nil {
				return err
			}
			rows, err := ledger.Query(cmd.Context(), pool, f)
			if err != nil {
				return err
			}
			cells := make([][]string, len(rows))
			for i, r := range rows {
				cells[i] = []string{strconv.FormatInt(r.Seq, 10), cellTime(r.Time), cellOr(r.AgentName, r.Agent), r.Route,
					cellOr(r.Model, "-"), strconv.FormatInt(r.InputTokens, 10) + "/" + strconv.FormatInt(r.OutputTokens, 10),
					cellMoney(r.CostMicros, r.Currency), strconv.Itoa(r.Status), r.EventID}
			}
			if rows == nil {
				rows = []ledger.Row{}
			}
			return a.print(rows, []string{"SEQ", "TIME", "AGENT", "ROUTE", "MODEL", "TOKENS IN/OUT", "COST", "STATUS", "EVENT"}, cells)
		},
	}
	qf.flags(q, true)
	s := &cobra.Command{
		Use:   "summary",
		Short: "Spend per agent, own and with descendants (--agent: that agent and its children)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			f, err := sf.build(cmd.Context(), a)
			if err != nil {
				return err
			}
			pool, err := a.db(cmd.Context())
			if err != nil {
				return err
			}
			rows, err := ledger.Summary(cmd.Context(), pool, f)
			if err != nil {
				return err
			}
			cells := make([][]string, len(rows))
			for i, r := range rows {
				cells[i] = []string{cellOr(r.AgentName, r.Agent), strconv.FormatInt(r.Entries, 10),
					cellMoney(r.OwnMicros, r.Currency), cellMoney(r.TotalMicros, r.Currency)}
			}
			if rows == nil {
				rows = []ledger.SummaryRow{}
			}
			return a.print(rows, []string{"AGENT", "ENTRIES", "OWN", "WITH DESCENDANTS"}, cells)
		},
	}
	sf.flags(s, false)
	c.AddCommand(q, s)
	return c
}

// Helpers of the ledger, merkle and audit commands.

// agentRef resolves an agent name or id; an id need not be in the agents
// table (the ledger keeps entries of deleted agents).
func (a *app) agentRef(ctx context.Context, ref string) (*event.UUID, error) {
	if ref == "" {
		return nil, nil
	}
	if u, err := event.ParseUUID([]byte(ref)); err == nil {
		return &u, nil
	}
	pool, err := a.db(ctx)
	if err != nil {
		return nil, err
	}
	u, err := store.ResolveAgent(ctx, pool, ref)
	if err != nil {
		return nil, err
	}
	return &u, nil
}

// parseWhen parses --from/--to: RFC 3339, a date (YYYY-MM-DD, UTC), or a
// duration before now ("24h").
func parseWhen(flag, s string, now time.Time) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t, nil
	}
	if t, err := time.Parse(time.DateOnly, s); err == nil {
		return t, nil
	}
	if d, err := time.ParseDuration(s); err == nil && d >= 0 {
		return now.Add(-d), nil
	}
	return time.Time{}, fmt.Errorf("--%s %q: want RFC 3339, YYYY-MM-DD or a duration before now such as 24h", flag, s)
}
