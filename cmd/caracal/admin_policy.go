package main

import (
	"github.com/spf13/cobra"

	"github.com/caracal-gw/caracal/internal/money"
	"github.com/caracal-gw/caracal/internal/store"
)

func init() { extraCommands = append(extraCommands, adminCommand(newPolicyCmd)) }

var policyHeader = []string{"AGENT", "LIMIT", "WINDOW", "KIND", "ACTIVE", "VERSION", "REASON", "CHANGED BY", "CHANGED"}

func policyRows(rs []store.PolicyRow) [][]string {
	rows := make([][]string, 0, len(rs))
	for _, r := range rs {
		rows = append(rows, []string{r.Agent, cellMoney(r.LimitMicros, r.Currency), r.Window, r.WindowKind, cellBool(r.Active),
			cellInt(r.Version), r.Reason, r.ChangedBy, cellTime(r.ChangedAt)})
	}
	return rows
}

func newPolicyCmd(a *app) *cobra.Command {
	c := &cobra.Command{Use: "policy", Short: "Set and inspect agents' budget limits (every change is versioned)"}
	var p store.PolicySpec
	var limit string
	var inactive bool
	set := &cobra.Command{
		Use:   "set --agent A --limit 12.50 --window daily --reason TEXT",
		Short: "Create or change the agent's limit for one window (a new version with its reason)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			v, err := money.ParseNonNegative(limit)
			if err != nil {
				return err
			}
			db, err := a.db(cmd.Context())
			if err != nil {
				return err
			}
			p.LimitMicros, p.Active = v, !inactive
			r, err := store.SetPolicy(cmd.Context(), db, p)
			if err != nil {
				return err
			}
			return a.print(r, policyHeader, policyRows([]store.PolicyRow{r}))
		},
	}
	f := set.Flags()
	f.StringVar(&p.Agent, "agent", "", "agent (name or id)")
	f.StringVar(&limit, "limit", "", "the limit as a decimal amount, e.g. 12.50 (at most 6 decimals)")
	f.StringVar(&p.Currency, "currency", "USD", "ISO 4217 currency code")
	f.StringVar(&p.Window, "window", "", "hourly, daily, weekly or monthly")
	f.BoolVar(&p.Rolling, "rolling", false, "a rolling window instead of calendar boundaries (UTC)")
	f.StringVar(&p.Reason, "reason", "", "why the limit changes (required, kept in the history)")
	f.BoolVar(&inactive, "inactive", false, "store the policy but do not enforce it")
	for _, n := range []string{"agent", "limit", "window", "reason"} {
		_ = set.MarkFlagRequired(n)
	}
	var agent string
	list := &cobra.Command{
		Use:   "list",
		Short: "List policies",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			db, err := a.db(cmd.Context())
			if err != nil {
				return err
			}
			rs, err := store.ListPolicies(cmd.Context(), db, agent)
			if err != nil {
				return err
			}
			return a.print(rs, policyHeader, policyRows(rs))
		},
	}
	list.Flags().StringVar(&agent, "agent", "", "only the policies of this agent")
	var hagent string
	history := &cobra.Command{
		Use:   "history --agent A",
		Short: "Show every version of an agent's policies with its change reason",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			db, err := a.db(cmd.Context())
			if err != nil {
				return err
			}
			rs, err := store.PolicyHistory(cmd.Context(), db, hagent)
			if err != nil {
				return err
			}
			return a.print(rs, policyHeader, policyRows(rs))
		},
	}
	history.Flags().StringVar(&hagent, "agent", "", "agent (name or id)")
	_ = history.MarkFlagRequired("agent")
	c.AddCommand(set, list, history)
	return c
}
