package gateway

import (
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/caracal-gw/caracal/internal/config"
	"github.com/caracal-gw/caracal/internal/event"
	"github.com/caracal-gw/caracal/internal/testenv"
)

// setMaxMessageBytes sets the topic's max.message.bytes and waits until a
// probe of probeSize bytes is refused (refused) or accepted (!refused).
func setMaxMessageBytes(t *testing.T, brokers []string, topic, value string, probeSize int, refused bool) {
	t.Helper()
	v, err := strconv.Atoi(value)
	if err != nil {
		t.Fatal(err)
	}
	if refused {
		testenv.SetMaxMessageBytes(t, brokers, topic, v, nil, []int{probeSize})
	} else {
		testenv.SetMaxMessageBytes(t, brokers, topic, v, []int{probeSize}, nil)
	}
}

// TestProducerRecordsRefusedGoToTheSpool follows the runbook's
// "ProducerRecordsFailing" procedure: the metering topic refuses every
// record for good (max.message.bytes far below an event: MESSAGE_TOO_LARGE,
// not retriable). Requests are still answered, their events go to the spool
// and stay there (retried, never dropped) while the brokers are up; once
// max.message.bytes is raised again the spool drains and every event is on
// the topic exactly once.
func TestProducerRecordsRefusedGoToTheSpool(t *testing.T) {
	s := newStack(t, 5_000_000)
	p := s.rg.GW.producer
	setMaxMessageBytes(t, s.brokers, s.topic, "64", 512, true)

	failedBefore := s.metric(t, `caracal_producer_records_total{result="failed"}`)
	refusedBefore := s.metric(t, `caracal_producer_records_total{result="refused"}`)
	appendedBefore := s.metric(t, "caracal_spool_appended_total")
	drainedBefore := s.metric(t, "caracal_spool_drained_total")
	spooledBefore, _ := p.Spooled()
	const n = 20
	for i := range n {
		if resp, body := s.post(t, "/openai/chat/completions", s.key, chatBody); resp.StatusCode != 200 {
			t.Fatalf("request %d while the topic refuses records: %d %s", i, resp.StatusCode, body)
		}
	}
	// Every event reaches the spool (after Kafka refused it).
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if sp, _ := p.Spooled(); sp-spooledBefore >= n {
			break
		}
		if time.Now().After(deadline) {
			sp, _ := p.Spooled()
			t.Fatalf("%d of %d refused events reached the spool", sp-spooledBefore, n)
		}
	}
	if got := s.metric(t, "caracal_spool_records"); got < n {
		t.Fatalf("caracal_spool_records = %d, want at least %d", got, n)
	}
	if got := s.metric(t, "caracal_spool_appended_total") - appendedBefore; got < n {
		t.Fatalf("caracal_spool_appended_total rose by %d, want at least %d", got, n)
	}
	if s.metric(t, "caracal_producer_brokers_down") != 0 {
		t.Fatal("caracal_producer_brokers_down is 1, but the brokers answer")
	}
	// The alert's metric: records refused for good are counted under
	// result="refused" (the spool took them: nothing under "failed", which
	// counts records lost).
	failed := s.metric(t, `caracal_producer_records_total{result="failed"}`) - failedBefore
	refused := s.metric(t, `caracal_producer_records_total{result="refused"}`) - refusedBefore
	t.Logf(`caracal_producer_records_total: result="refused" rose by %d, result="failed" by %d, while %d events were refused`, refused, failed, n)
	if failed != 0 {
		t.Fatalf("caracal_producer_records_total{result=\"failed\"} rose by %d: records lost", failed)
	}
	if refused < 1 {
		t.Fatalf("caracal_producer_records_total{result=\"refused\"} rose by %d: the alert cannot fire", refused)
	}
	if !p.Refusing() {
		t.Fatal("the producer does not report Kafka refusing records")
	}
	// The drain keeps retrying while the cause is not fixed: nothing leaves
	// the spool.
	time.Sleep(time.Second)
	if got := s.metric(t, "caracal_spool_drained_total") - drainedBefore; got != 0 {
		t.Fatalf("%d records drained while the topic refuses them", got)
	}
	if got := s.metric(t, "caracal_spool_records"); got < n {
		t.Fatalf("caracal_spool_records fell to %d while the topic refuses records", got)
	}

	// Fix the cause: the spool drains by itself.
	setMaxMessageBytes(t, s.brokers, s.topic, "1048588", 512, false)
	for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		if s.metric(t, "caracal_spool_records") == 0 && s.metric(t, "caracal_spool_drained_total")-drainedBefore >= n {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("spool did not drain: %d records left, %d drained", s.metric(t, "caracal_spool_records"),
				s.metric(t, "caracal_spool_drained_total")-drainedBefore)
		}
	}
	// Every event once on the topic (probes are not events).
	recs := readTopic(t, s.brokers, s.topic)
	ids := map[event.ID]int{}
	for _, r := range recs {
		var e event.Metering
		if event.DecodeMetering(r.Value, &e) == nil {
			ids[e.ID]++
		}
	}
	if len(ids) != n {
		t.Fatalf("%d distinct events on %s, want %d", len(ids), s.topic, n)
	}
	for id, c := range ids {
		if c != 1 {
			t.Errorf("event %s is on the topic %d times", id, c)
		}
	}
	if got := s.mock.Stats().Requests; got != n {
		t.Fatalf("upstream served %d requests, want %d", got, n)
	}
}

// readTopic: testenv.ReadTopic.
func readTopic(t *testing.T, brokers []string, topic string) []*kgo.Record {
	t.Helper()
	return testenv.ReadTopic(t, brokers, topic)
}

// TestProducerRefusedSpoolFullFailsClosed: Kafka refuses every record and
// the spool holds 16 KiB. A burst of concurrent requests is forwarded only
// while the spool can hold their events; the rest are answered 503
// metering_unavailable and never reach the upstream. No event is lost:
// requests answered 200 == requests the upstream served == events in the
// spool, and result="failed" does not move. Once the topic takes records
// again every event is on it exactly once.
func TestProducerRefusedSpoolFullFailsClosed(t *testing.T) {
	testConfigure = func(c *config.Config) { c.Gateway.SpoolMaxBytes = 16 << 10 }
	s := newStack(t, 5_000_000)
	testConfigure = nil
	p := s.rg.GW.producer
	setMaxMessageBytes(t, s.brokers, s.topic, "64", 512, true)
	failedBefore := s.metric(t, `caracal_producer_records_total{result="failed"}`)
	spooledBefore, _ := p.Spooled()

	const workers, each = 8, 10
	var ok200, unavailable atomic.Int64
	errs := make(chan error, workers*each)
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range each {
				req, _ := http.NewRequest("POST", s.base+"/openai/chat/completions", strings.NewReader(chatBody))
				req.Header.Set("Content-Type", "application/json")
				req.Header.Set("Authorization", "Bearer "+s.key)
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					errs <- err
					continue
				}
				body, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				switch {
				case resp.StatusCode == 200:
					ok200.Add(1)
				case resp.StatusCode == 503 && strings.Contains(string(body), "metering_unavailable"):
					unavailable.Add(1)
				default:
					errs <- fmt.Errorf("unexpected answer %d %s", resp.StatusCode, body)
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if t.Failed() {
		t.FailNow()
	}
	t.Logf("%d requests: %d answered 200, %d answered 503 metering_unavailable", workers*each, ok200.Load(), unavailable.Load())
	if ok200.Load() == 0 || unavailable.Load() == 0 {
		t.Fatalf("%d answered 200, %d 503: want both (the spool fills)", ok200.Load(), unavailable.Load())
	}
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		sp, _ := p.Spooled()
		if sp-spooledBefore >= ok200.Load() && p.Reserved() == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d forwarded requests' events reached the spool; %d bytes still reserved", sp-spooledBefore, ok200.Load(), p.Reserved())
		}
	}
	if got := s.mock.Stats().Requests; int64(got) != ok200.Load() {
		t.Fatalf("upstream served %d requests, %d were answered 200", got, ok200.Load())
	}
	if got := s.metric(t, "caracal_spool_records"); got != ok200.Load() {
		t.Fatalf("caracal_spool_records = %d, want %d (one per forwarded request)", got, ok200.Load())
	}
	if got := s.metric(t, "caracal_spool_bytes"); got > 16<<10 {
		t.Fatalf("caracal_spool_bytes = %d over the 16 KiB cap", got)
	}
	if f := s.metric(t, `caracal_producer_records_total{result="failed"}`) - failedBefore; f != 0 {
		t.Fatalf(`caracal_producer_records_total{result="failed"} rose by %d: events lost`, f)
	}

	setMaxMessageBytes(t, s.brokers, s.topic, "1048588", 512, false)
	for deadline := time.Now().Add(90 * time.Second); s.metric(t, "caracal_spool_records") != 0; time.Sleep(100 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("spool did not drain: %d records left", s.metric(t, "caracal_spool_records"))
		}
	}
	ids := map[event.ID]int{}
	for _, r := range readTopic(t, s.brokers, s.topic) {
		var e event.Metering
		if event.DecodeMetering(r.Value, &e) == nil {
			ids[e.ID]++
		}
	}
	if int64(len(ids)) != ok200.Load() {
		t.Fatalf("%d distinct events on %s, want %d", len(ids), s.topic, ok200.Load())
	}
	for id, c := range ids {
		if c != 1 {
			t.Errorf("event %s is on the topic %d times", id, c)
		}
	}
}
