package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/caracal-gw/caracal/internal/store"
)

func init() { extraCommands = append(extraCommands, adminCommand(newAgentCmd)) }

var agentHeader = []string{"NAME", "ID", "PARENT", "STATUS", "RATE/S", "BURST", "REPLAY", "CREATED"}

func agentCells(r store.AgentRow) []string {
	return []string{r.Name, r.ID, cellOr(r.Parent, "-"), r.Status, cellInt(r.RateLimitRPS), cellInt(r.RateLimitBurst),
		cellBool(r.ReplayRequired), cellTime(r.CreatedAt)}
}

func (a *app) printAgents(rs ...store.AgentRow) error {
	rows := make([][]string, 0, len(rs))
	for _, r := range rs {
		rows = append(rows, agentCells(r))
	}
	if len(rs) == 1 {
		return a.print(rs[0], agentHeader, rows)
	}
	return a.print(rs, agentHeader, rows)
}

func newAgentCmd(a *app) *cobra.Command {
	c := &cobra.Command{Use: "agent", Short: "Create, list and disable agents (the principals that spend)"}
	var na store.NewAgent
	create := &cobra.Command{
		Use:   "create NAME",
		Short: "Create an agent, optionally delegated from a parent whose budget bounds it",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			db, err := a.db(cmd.Context())
			if err != nil {
				return err
			}
			na.Name = args[0]
			r, err := store.CreateAgent(cmd.Context(), db, na)
			if err != nil {
				return err
			}
			return a.printAgents(r)
		},
	}
	f := create.Flags()
	f.StringVar(&na.Parent, "parent", "", "parent agent (name or id); its budgets also bound this agent")
	f.IntVar(&na.RateLimitRPS, "rate-limit-rps", 0, "requests per second (0: no rate limit)")
	f.IntVar(&na.RateLimitBurst, "rate-limit-burst", 0, "burst size (default: the rate)")
	f.BoolVar(&na.ReplayRequired, "replay-required", false, "require nonce and timestamp headers on every request")
	list := &cobra.Command{
		Use:   "list",
		Short: "List every agent",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			db, err := a.db(cmd.Context())
			if err != nil {
				return err
			}
			rs, err := store.ListAgents(cmd.Context(), db)
			if err != nil {
				return err
			}
			rows := make([][]string, 0, len(rs))
			for _, r := range rs {
				rows = append(rows, agentCells(r))
			}
			return a.print(rs, agentHeader, rows)
		},
	}
	get := &cobra.Command{
		Use:   "get NAME|ID",
		Short: "Show one agent",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			db, err := a.db(cmd.Context())
			if err != nil {
				return err
			}
			r, err := store.GetAgent(cmd.Context(), db, args[0])
			if err != nil {
				return err
			}
			return a.printAgents(r)
		},
	}
	c.AddCommand(create, list, get, a.agentStatusCmd("disable", false), a.agentStatusCmd("enable", true))
	return c
}

func (a *app) agentStatusCmd(verb string, active bool) *cobra.Command {
	return &cobra.Command{
		Use:   verb + " NAME|ID",
		Short: fmt.Sprintf("%s an agent (gateways drop their cached copy at once)", map[bool]string{true: "Enable", false: "Disable"}[active]),
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			db, err := a.db(cmd.Context())
			if err != nil {
				return err
			}
			r, err := store.SetAgentStatus(cmd.Context(), db, args[0], active)
			if err != nil {
				return err
			}
			return a.printAgents(r)
		},
	}
}
