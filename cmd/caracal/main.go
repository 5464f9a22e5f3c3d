// Command caracal is the one binary of every Caracal role: the gateway, the
// consumers, the local dev stack and the administration commands.
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "caracal: "+oneLine(err.Error()))
		os.Exit(1)
	}
}

// run builds the command tree and executes args; it is what tests call.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	root, a := newRootCmd(stdout, stderr)
	root.SetArgs(args)
	err := root.ExecuteContext(ctx)
	// The pool is closed whatever the outcome, so failed commands (and
	// tests that run many) leave no connection behind.
	if a.pool != nil {
		a.pool.Close()
	}
	return err
}

func oneLine(s string) string {
	b := []byte(s)
	for i, c := range b {
		if c == '\n' || c == '\r' {
			b[i] = ' '
		}
	}
	return string(b)
}
