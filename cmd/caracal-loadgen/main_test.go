package main

import (
	"bytes"
	"encoding/json"
	"net"
	"strings"
	"testing"

	"github.com/caracal-gw/caracal/loadtest"
	"github.com/caracal-gw/caracal/loadtest/mockupstream"
)

func mock(t *testing.T, o mockupstream.Options) (string, *mockupstream.Server) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	m := mockupstream.New(o)
	go m.Serve(ln) //nolint:errcheck
	t.Cleanup(func() { m.Close() })
	return "http://" + ln.Addr().String() + "/v1/chat/completions", m
}

func TestJSONSummaryAndStreams(t *testing.T) {
	for _, stream := range []bool{false, true} {
		url, m := mock(t, mockupstream.Options{})
		args := []string{"-url", url, "-rate", "100", "-duration", "300ms", "-connections", "2", "-json"}
		if stream {
			args = append(args, "-stream")
		}
		var out, errb bytes.Buffer
		if err := run(args, &out, &errb); err != nil {
			t.Fatalf("stream=%v: %v %s", stream, err, errb.String())
		}
		var s loadtest.Summary
		if err := json.Unmarshal(out.Bytes(), &s); err != nil {
			t.Fatalf("not JSON: %v\n%s", err, out.String())
		}
		st := m.Stats()
		if s.Attempted != 30 || s.OK != 30 || st.OK != 30 || (st.ChatCompletions.Streams == 30) != stream {
			t.Fatalf("stream=%v: summary %+v, mock saw %+v", stream, s, st)
		}
	}
}

func TestScenarioThresholdFailsTheRun(t *testing.T) {
	url, _ := mock(t, mockupstream.Options{ErrorEvery: 2})
	var out, errb bytes.Buffer
	err := run([]string{"-url", url, "-scenario", "1k", "-rate", "100", "-duration", "200ms", "-connections", "2"}, &out, &errb)
	if err == nil || !strings.Contains(errb.String(), "THRESHOLD FAILED: error rate") {
		t.Fatalf("err %v, stderr %q", err, errb.String())
	}
	if !strings.Contains(out.String(), "status_500=10") {
		t.Fatalf("human summary lacks the error class:\n%s", out.String())
	}
}

// TestScenarioPasses: a clean run passes the scenario's thresholds. The p99
// bound is lifted: a test must not depend on how fast a shared machine is.
func TestScenarioPasses(t *testing.T) {
	url, _ := mock(t, mockupstream.Options{})
	var out, errb bytes.Buffer
	if err := run([]string{"-url", url, "-scenario", "1k", "-rate", "100", "-duration", "200ms", "-max-p99", "1h"}, &out, &errb); err != nil {
		t.Fatalf("%v: %s", err, errb.String())
	}
}

func TestBadFlags(t *testing.T) {
	for _, args := range [][]string{{"-scenario", "7k"}, {"-rate", "0"}, {"-body-file", "/nonexistent"}, {"extra"}} {
		var out, errb bytes.Buffer
		if err := run(args, &out, &errb); err == nil {
			t.Errorf("%v accepted", args)
		}
	}
}
