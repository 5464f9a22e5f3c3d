package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/caracal-gw/caracal/internal/store"
)

func init() { extraCommands = append(extraCommands, adminCommand(newKeyCmd)) }

var keyHeader = []string{"PREFIX", "AGENT", "NAME", "CREATED", "EXPIRES", "REVOKED"}

func keyCells(r store.KeyRow) []string {
	return []string{r.Prefix, r.Agent, cellOr(r.Name, "-"), cellTime(r.CreatedAt), cellTimePtr(r.ExpiresAt), cellTimePtr(r.RevokedAt)}
}

func newKeyCmd(a *app) *cobra.Command {
	c := &cobra.Command{Use: "key", Short: "Create, list and revoke agents' API keys"}
	var nk store.NewKey
	create := &cobra.Command{
		Use:   "create --agent A",
		Short: "Create an API key; the key is printed once and only its hash is stored",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			db, err := a.db(cmd.Context())
			if err != nil {
				return err
			}
			k, err := store.CreateKey(cmd.Context(), db, nk)
			if err != nil {
				return err
			}
			fmt.Fprintln(a.stderr, "This is the only time the key is shown: store it now, it cannot be shown again.")
			return a.print(k, []string{"KEY", "PREFIX", "AGENT", "EXPIRES"},
				[][]string{{k.Key, k.Prefix, k.Agent, cellTimePtr(k.ExpiresAt)}})
		},
	}
	f := create.Flags()
	f.StringVar(&nk.Agent, "agent", "", "agent (name or id) the key authenticates")
	f.StringVar(&nk.Name, "name", "", "a label for the key")
	f.DurationVar(&nk.ExpiresIn, "expires-in", 0, "lifetime, e.g. 720h (default: never expires)")
	_ = create.MarkFlagRequired("agent")
	var agent string
	list := &cobra.Command{
		Use:   "list",
		Short: "List keys (prefixes only, never secrets)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			db, err := a.db(cmd.Context())
			if err != nil {
				return err
			}
			rs, err := store.ListKeys(cmd.Context(), db, agent)
			if err != nil {
				return err
			}
			rows := make([][]string, 0, len(rs))
			for _, r := range rs {
				rows = append(rows, keyCells(r))
			}
			return a.print(rs, keyHeader, rows)
		},
	}
	list.Flags().StringVar(&agent, "agent", "", "only the keys of this agent")
	revoke := &cobra.Command{
		Use:   "revoke PREFIX",
		Short: "Revoke a key by its prefix (crk_ and 12 characters)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			db, err := a.db(cmd.Context())
			if err != nil {
				return err
			}
			r, err := store.RevokeKey(cmd.Context(), db, args[0])
			if err != nil {
				return err
			}
			return a.print(r, keyHeader, [][]string{keyCells(r)})
		},
	}
	c.AddCommand(create, list, revoke)
	return c
}
