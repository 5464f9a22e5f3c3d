// Command caracal-loadgen is an open-loop HTTP load generator: constant
// arrival rate, latency from the scheduled send time, error classes, and an
// optional scenario (-scenario 1k|10k|100k) whose thresholds make it exit 1.
//
//	caracal-loadgen -url http://127.0.0.1:8080/openai/chat/completions -key crk_... -rate 1000 -duration 10s
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/caracal-gw/caracal/loadtest"
	"github.com/caracal-gw/caracal/loadtest/scenarios"
)

const defaultBody = `{"model":"gpt-4o-mini","max_tokens":24,"messages":[{"role":"user","content":"Say hello in five words."}]}`

const streamBody = `{"model":"gpt-4o-mini","max_tokens":24,"stream":true,"stream_options":{"include_usage":true},"messages":[{"role":"user","content":"Say hello in five words."}]}`

func main() {
	if err := run(os.Args[1:], os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "caracal-loadgen:", err)
		os.Exit(1)
	}
}

type flags struct {
	url, key, body, bodyFile, scenario, db string
	rate                                   float64
	duration, timeout, ledgerWait, maxP99  time.Duration
	maxRequests                            int64
	connections, maxInFlight               int
	stream, jsonOut, insecure              bool
	// set names the flags given on the command line (they override a scenario).
	set map[string]bool
}

func parse(args []string, stderr io.Writer) (*flags, error) {
	var f flags
	fs := flag.NewFlagSet("caracal-loadgen", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&f.url, "url", "http://127.0.0.1:8080/openai/chat/completions", "target URL")
	fs.StringVar(&f.key, "key", "", "API key, sent as Authorization: Bearer KEY")
	fs.StringVar(&f.body, "body", "", "request body (default: a small chat completion; empty with -body-file)")
	fs.StringVar(&f.bodyFile, "body-file", "", "read the request body from this file")
	fs.Float64Var(&f.rate, "rate", 100, "arrival rate, requests per second")
	fs.DurationVar(&f.duration, "duration", 10*time.Second, "how long to send")
	fs.Int64Var(&f.maxRequests, "max-requests", 0, "stop after this many requests (0: rate × duration)")
	fs.IntVar(&f.connections, "connections", 16, "keep-alive connections")
	fs.IntVar(&f.maxInFlight, "max-in-flight", 10000, "requests outstanding at most; more are counted as overload errors")
	fs.DurationVar(&f.timeout, "timeout", 10*time.Second, "per-request timeout (from the scheduled send time)")
	fs.BoolVar(&f.stream, "stream", false, "ask for SSE streams (default body gets \"stream\": true)")
	fs.BoolVar(&f.jsonOut, "json", false, "print the summary as JSON")
	fs.BoolVar(&f.insecure, "insecure", false, "skip TLS certificate verification")
	fs.StringVar(&f.scenario, "scenario", "", "a tier (1k, 10k, 100k): sets rate, duration and connections, and checks its thresholds")
	fs.StringVar(&f.db, "db", "", "PostgreSQL URL: check ledger rows == accepted requests after the run")
	fs.DurationVar(&f.ledgerWait, "ledger-wait", 60*time.Second, "how long to wait for the ledger to catch up")
	fs.DurationVar(&f.maxP99, "max-p99", 0, "override the scenario's p99 threshold (0: the scenario's)")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	f.set = map[string]bool{}
	fs.Visit(func(fl *flag.Flag) { f.set[fl.Name] = true })
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	return &f, nil
}

func (f *flags) requestBody() ([]byte, error) {
	switch {
	case f.bodyFile != "":
		b, err := os.ReadFile(f.bodyFile)
		if err != nil {
			return nil, fmt.Errorf("cannot read -body-file: %w", err)
		}
		return b, nil
	case f.body != "":
		return []byte(f.body), nil
	case f.stream:
		return []byte(streamBody), nil
	}
	return []byte(defaultBody), nil
}

func run(args []string, stdout, stderr io.Writer) error {
	f, err := parse(args, stderr)
	if err != nil {
		return err
	}
	body, err := f.requestBody()
	if err != nil {
		return err
	}
	cfg := loadtest.Config{URL: f.url, Body: body, Key: f.key, Stream: f.stream, Rate: f.rate, Duration: f.duration,
		MaxRequests: f.maxRequests, Connections: f.connections, MaxInFlight: f.maxInFlight, Timeout: f.timeout, Insecure: f.insecure}
	var th *scenarios.Thresholds
	if f.scenario != "" {
		sc, err := scenarios.ByName(f.scenario)
		if err != nil {
			return err
		}
		th = &sc.Thresholds
		if f.maxP99 > 0 {
			th.MaxP99 = f.maxP99
		}
		// A scenario sets the load; flags given explicitly still win (short CI runs).
		if !f.set["rate"] {
			cfg.Rate = sc.Rate
		}
		if !f.set["duration"] {
			cfg.Duration = sc.Duration
		}
		if !f.set["connections"] {
			cfg.Connections = sc.Connections
		}
	}
	if isTerminal(stdout) && !f.jsonOut {
		cfg.Progress = func(s loadtest.Snapshot) {
			fmt.Fprintf(stdout, "\r%5.1fs  sent %d  done %d  failed %d  in flight %d   ",
				s.Elapsed.Seconds(), s.Attempted, s.Completed, s.Failed, s.InFlight)
		}
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	since := time.Now().Add(-time.Second)
	sum, err := loadtest.Run(ctx, cfg)
	if err != nil {
		return err
	}
	if cfg.Progress != nil {
		fmt.Fprint(stdout, "\r\033[K")
	}
	if f.db != "" {
		n, err := scenarios.LedgerRows(ctx, f.db, f.key, since, sum.OK, f.ledgerWait)
		if err != nil {
			return err
		}
		sum.LedgerRows = n
	}
	if f.jsonOut {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(sum); err != nil {
			return err
		}
	} else {
		sum.WriteText(stdout)
	}
	if th == nil {
		return nil
	}
	if bad := th.Check(sum); len(bad) > 0 {
		for _, b := range bad {
			fmt.Fprintln(stderr, "THRESHOLD FAILED:", b)
		}
		return errors.New("scenario " + f.scenario + " failed its thresholds")
	}
	fmt.Fprintln(stderr, "scenario", f.scenario, "passed its thresholds")
	return nil
}

// isTerminal reports whether w is a character device (a terminal).
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}
