package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/caracal-gw/caracal/internal/store"
)

func init() { extraCommands = append(extraCommands, adminCommand(newAllowCmd)) }

func newAllowCmd(a *app) *cobra.Command {
	c := &cobra.Command{
		Use:   "allow",
		Short: "Manage agents' allow-lists of routes, models and targets (an empty list allows all)",
	}
	change := func(verb, short string, do func(*cobra.Command, string, string, string) error) *cobra.Command {
		var agent, kind string
		cmd := &cobra.Command{
			Use:   verb + " --agent A --kind route|model|target PATTERN",
			Short: short,
			Args:  cobra.ExactArgs(1),
			RunE: func(cmd *cobra.Command, args []string) error {
				if err := do(cmd, agent, kind, args[0]); err != nil {
					return err
				}
				fmt.Fprintf(a.stdout, "%s %s %q for agent %q\n", map[string]string{"add": "allowed", "remove": "removed"}[verb], kind, args[0], agent)
				return nil
			},
		}
		cmd.Flags().StringVar(&agent, "agent", "", "agent (name or id)")
		cmd.Flags().StringVar(&kind, "kind", "", "route (a route name), model (a name or prefix*) or target (a host or *.suffix)")
		_ = cmd.MarkFlagRequired("agent")
		_ = cmd.MarkFlagRequired("kind")
		return cmd
	}
	add := change("add", "Allow a pattern", func(cmd *cobra.Command, agent, kind, pattern string) error {
		db, err := a.db(cmd.Context())
		if err != nil {
			return err
		}
		return store.AddAllow(cmd.Context(), db, agent, kind, pattern)
	})
	remove := change("remove", "Remove a pattern", func(cmd *cobra.Command, agent, kind, pattern string) error {
		db, err := a.db(cmd.Context())
		if err != nil {
			return err
		}
		return store.RemoveAllow(cmd.Context(), db, agent, kind, pattern)
	})
	var agent, kind string
	list := &cobra.Command{
		Use:   "list [--agent A] [--kind K]",
		Short: "List allow-list entries",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			db, err := a.db(cmd.Context())
			if err != nil {
				return err
			}
			rs, err := store.ListAllow(cmd.Context(), db, agent, kind)
			if err != nil {
				return err
			}
			rows := make([][]string, 0, len(rs))
			for _, r := range rs {
				rows = append(rows, []string{r.Agent, r.Kind, r.Pattern, cellTime(r.CreatedAt)})
			}
			return a.print(rs, []string{"AGENT", "KIND", "PATTERN", "CREATED"}, rows)
		},
	}
	list.Flags().StringVar(&agent, "agent", "", "only this agent")
	list.Flags().StringVar(&kind, "kind", "", "only this kind")
	c.AddCommand(add, remove, list)
	return c
}
