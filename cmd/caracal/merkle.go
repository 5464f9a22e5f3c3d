package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/caracal-gw/caracal/consumers/ledger"
	"github.com/caracal-gw/caracal/internal/event"
)

func init() { extraCommands = append(extraCommands, adminCommand(newMerkleCmd)) }

// signerKeyEnv holds the checkpoint signer key when no file is given.
const signerKeyEnv = "CARACAL_MERKLE_SIGNER_KEY"

// verifierKeyEnv holds the verifier key (or its file) when --public-key is
// not given.
const verifierKeyEnv = "CARACAL_MERKLE_PUBLIC_KEY"

func newMerkleCmd(a *app) *cobra.Command {
	c := &cobra.Command{Use: "merkle", Short: "The tamper-evident ledger log: keys, verification, proofs"}
	c.AddCommand(newMerkleKeygenCmd(a), newMerkleVerifyCmd(a), newMerkleProveCmd(a), newMerkleCheckProofCmd(a), newMerkleSealCmd(a))
	return c
}

func newMerkleKeygenCmd(a *app) *cobra.Command {
	var name, dir string
	c := &cobra.Command{
		Use:   "keygen",
		Short: "Write a new Ed25519 checkpoint signer key (<name>.key, mode 0600) and verifier key (<name>.pub)",
		Args:  cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			skey, vkey, err := ledger.GenerateKey(name)
			if err != nil {
				return fmt.Errorf("cannot generate a key: %w", err)
			}
			sp, vp := filepath.Join(dir, name+".key"), filepath.Join(dir, name+".pub")
			if err := os.WriteFile(sp, []byte(skey+"\n"), 0o600); err != nil {
				return fmt.Errorf("cannot write the signer key: %w", err)
			}
			if err := os.WriteFile(vp, []byte(vkey+"\n"), 0o644); err != nil {
				return fmt.Errorf("cannot write the verifier key: %w", err)
			}
			fmt.Fprintf(a.stdout, "signer key:   %s (keep secret; or set %s)\nverifier key: %s\n%s\n", sp, signerKeyEnv, vp, vkey)
			return nil
		},
	}
	c.Flags().StringVar(&name, "name", "caracal-ledger", "key name (the checkpoint origin)")
	c.Flags().StringVar(&dir, "out-dir", ".", "directory for the key files")
	return c
}

func verifierFlag(c *cobra.Command, key *string) {
	c.Flags().StringVar(key, "public-key", os.Getenv(verifierKeyEnv), "verifier key or its file (env "+verifierKeyEnv+")")
}

func newMerkleVerifyCmd(a *app) *cobra.Command {
	var key string
	var from, to int64
	c := &cobra.Command{
		Use:   "verify",
		Short: "Recompute entries [--from, --to) and every checkpoint in range; name the first bad entry; exit non-zero on a problem",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			v, err := ledger.LoadVerifier(key)
			if err != nil {
				return err
			}
			pool, err := a.db(cmd.Context())
			if err != nil {
				return err
			}
			rep, err := ledger.Verify(cmd.Context(), pool, v, from, to, a.progress("verified"))
			if err != nil {
				return err
			}
			if a.output == "json" {
				if err := a.print(rep, nil, nil); err != nil {
					return err
				}
			} else {
				fmt.Fprintf(a.stdout, "entries %d..%d, %d checkpoints checked; %d sealed entries after the last checkpoint, %d not sealed yet\n",
					rep.From, rep.To, rep.Checkpoints, rep.Uncovered, rep.Unsealed)
			}
			if rep.Problem != nil {
				return fmt.Errorf("verification failed: %w", rep.Problem)
			}
			if a.output != "json" {
				fmt.Fprintln(a.stdout, "OK")
			}
			return nil
		},
	}
	verifierFlag(c, &key)
	c.Flags().Int64Var(&from, "from", 0, "first entry (seq) to recompute; hashes below it are trusted")
	c.Flags().Int64Var(&to, "to", -1, "end entry (exclusive); default the sealed tree size")
	return c
}

func newMerkleProveCmd(a *app) *cobra.Command {
	var id string
	c := &cobra.Command{
		Use:   "prove",
		Short: "Print the inclusion proof of an event in the latest signed checkpoint as JSON",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			eid, err := event.ParseID([]byte(id))
			if err != nil {
				return fmt.Errorf("--event-id: %w", err)
			}
			pool, err := a.db(cmd.Context())
			if err != nil {
				return err
			}
			p, err := ledger.Prove(cmd.Context(), pool, eid)
			if err != nil {
				return err
			}
			enc := json.NewEncoder(a.stdout)
			enc.SetIndent("", "  ")
			return enc.Encode(p)
		},
	}
	c.Flags().StringVar(&id, "event-id", "", "event id (26 characters)")
	return c
}

func newMerkleCheckProofCmd(a *app) *cobra.Command {
	var key string
	c := &cobra.Command{
		Use:   "check-proof FILE",
		Short: "Check a proof from `merkle prove` offline with the verifier key alone",
		Args:  cobra.ExactArgs(1),
		RunE: func(_ *cobra.Command, args []string) error {
			v, err := ledger.LoadVerifier(key)
			if err != nil {
				return err
			}
			data, err := os.ReadFile(args[0])
			if err != nil {
				return fmt.Errorf("cannot read the proof: %w", err)
			}
			p, err := ledger.CheckProof(data, v)
			if err != nil {
				return err
			}
			fmt.Fprintf(a.stdout, "OK: event %s is entry %d of the log of %d entries signed by %s\n", p.Entry.EventID, p.Index, p.TreeSize, v.Name())
			return nil
		},
	}
	verifierFlag(c, &key)
	return c
}

func newMerkleSealCmd(a *app) *cobra.Command {
	var keyFile string
	c := &cobra.Command{
		Use:   "seal",
		Short: "Seal every unsealed ledger entry now and sign a checkpoint (the ledger consumer does this continuously)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			s, _, err := ledger.LoadSigner(keyFile, signerKeyEnv)
			if err != nil {
				return err
			}
			pool, err := a.db(cmd.Context())
			if err != nil {
				return err
			}
			if err := ledger.NewSealer(pool, ledger.SealerOptions{Signer: s}).SealAll(cmd.Context()); err != nil {
				return err
			}
			var size int64
			if err := pool.QueryRow(cmd.Context(), `SELECT tree_size FROM merkle_head`).Scan(&size); err != nil {
				return fmt.Errorf("cannot read the tree size: %w", err)
			}
			fmt.Fprintf(a.stdout, "tree size %d\n", size)
			return nil
		},
	}
	c.Flags().StringVar(&keyFile, "signer-key-file", "", "checkpoint signer key file (else env "+signerKeyEnv+")")
	return c
}

// progress returns a callback that shows progress on stderr when it is a
// terminal, else nil.
func (a *app) progress(what string) func(done, total int64) {
	f, ok := a.stderr.(*os.File)
	if !ok || !isTerminal(f) {
		return nil
	}
	return func(done, total int64) {
		fmt.Fprintf(f, "\r%s %d/%d entries", what, done, total)
		if done >= total {
			fmt.Fprintln(f)
		}
	}
}

func isTerminal(f *os.File) bool {
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}
