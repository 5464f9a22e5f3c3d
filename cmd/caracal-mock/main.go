// Command caracal-mock runs the mock OpenAI- and Anthropic-compatible
// upstream (loadtest/mockupstream) for demos and load tests.
package main

import (
	"errors"
	"flag"
	"fmt"
	"log"
	"net"
	"os"
	"os/signal"
	"syscall"

	"github.com/caracal-gw/caracal/loadtest/mockupstream"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		log.Printf("caracal-mock: %s", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	fs := flag.NewFlagSet("caracal-mock", flag.ContinueOnError)
	addr := fs.String("addr", "127.0.0.1:8089", "listen address")
	var o mockupstream.Options
	fs.Int64Var(&o.OutputTokens, "output-tokens", 16, "output tokens per answer (capped by the request's max tokens)")
	fs.IntVar(&o.Chunks, "chunks", 4, "content chunks per stream")
	fs.DurationVar(&o.Latency, "latency", 0, "delay before each answer")
	fs.DurationVar(&o.ChunkDelay, "chunk-delay", 0, "delay between stream chunks")
	fs.Int64Var(&o.ErrorEvery, "error-every", 0, "answer 500 to every Nth request (0: never)")
	fs.BoolVar(&o.RequireIncludeUsage, "require-include-usage", false, "send the chat stream usage chunk only when stream_options.include_usage is set, as OpenAI does")
	fs.IntVar(&o.MaxBodySize, "max-body-size", 16<<20, "largest request body in bytes")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if o.OutputTokens < 0 || o.Chunks < 0 || o.Latency < 0 || o.ChunkDelay < 0 || o.ErrorEvery < 0 || o.MaxBodySize < 0 {
		return errors.New("flags must not be negative")
	}
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		return fmt.Errorf("cannot listen on %s: %w", *addr, err)
	}
	s := mockupstream.New(o)
	done := make(chan error, 1)
	go func() { done <- s.Serve(ln) }()
	log.Printf("caracal-mock: serving on http://%s (stats: GET /_mock/stats)", ln.Addr())
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
	select {
	case err := <-done:
		return err
	case <-sig:
	}
	if err := s.Close(); err != nil {
		return err
	}
	return <-done
}
