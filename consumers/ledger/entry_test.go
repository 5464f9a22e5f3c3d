package ledger

import (
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/caracal-gw/caracal/internal/event"
)

func sampleEntry() Entry {
	return Entry{Seq: 7, EventID: event.ID{1}, TimeUnixUs: 1_700_000_000_000_000, Kind: event.KindUsage,
		Agent: event.UUID{2}, Root: event.UUID{3}, Route: "openai", Model: "gpt-4o", InputTokens: 10, OutputTokens: 20,
		CostMicros: 1234, ReservedMicros: 5000, Currency: [3]byte{'U', 'S', 'D'}, Status: 200}
}

// The canonical encoding is a published format: this golden value changes
// only with EncodingVersion.
func TestCanonicalEncodingIsStable(t *testing.T) {
	e := sampleEntry()
	want := "01" + "0000000000000007" + "01000000000000000000000000000000" + "00060a24181e4000" + "01" +
		"02000000000000000000000000000000" + "03000000000000000000000000000000" +
		"00000006" + hex6("openai") + "00000006" + hex6("gpt-4o") +
		"000000000000000a" + "0000000000000014" + "00000000000004d2" + "0000000000001388" + "555344" + "000000c8"
	if got := hex.EncodeToString(e.AppendCanonical(nil)); got != want {
		t.Fatalf("canonical encoding\n got %s\nwant %s", got, want)
	}
	fields := []func(*Entry){
		func(e *Entry) { e.Seq++ }, func(e *Entry) { e.EventID[15]++ }, func(e *Entry) { e.TimeUnixUs++ },
		func(e *Entry) { e.Kind++ }, func(e *Entry) { e.Agent[15]++ }, func(e *Entry) { e.Root[15]++ },
		func(e *Entry) { e.Route += "x" }, func(e *Entry) { e.Model += "x" }, func(e *Entry) { e.InputTokens++ },
		func(e *Entry) { e.OutputTokens++ }, func(e *Entry) { e.CostMicros++ }, func(e *Entry) { e.ReservedMicros++ },
		func(e *Entry) { e.Currency[0] = 'E' }, func(e *Entry) { e.Status++ },
		// A byte moved between route and model must not collide.
		func(e *Entry) { e.Route, e.Model = "openaig", "pt-4o" },
	}
	base, _ := e.RecordHash(nil)
	for i, change := range fields {
		c := sampleEntry()
		change(&c)
		if h, _ := c.RecordHash(nil); h == base {
			t.Errorf("change %d does not change the record hash", i)
		}
	}
}

func hex6(s string) string { return hex.EncodeToString([]byte(s)) }

func TestRecordHashDoesNotAllocate(t *testing.T) {
	e := sampleEntry()
	buf := make([]byte, 0, 256)
	if n := testing.AllocsPerRun(100, func() { _, buf = e.RecordHash(buf) }); n != 0 {
		t.Fatalf("%v allocations per record hash", n)
	}
}

func TestCheckpointRoundTripAndLoadSigner(t *testing.T) {
	skey, vkey, err := GenerateKey("caracal-ledger")
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "k")
	if err := os.WriteFile(path, []byte(skey+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	s, derived, err := LoadSigner(path, "UNUSED_ENV")
	if err != nil {
		t.Fatal(err)
	}
	v, err := note.NewVerifier(vkey)
	if err != nil {
		t.Fatal(err)
	}
	if derived.KeyHash() != v.KeyHash() || derived.Name() != v.Name() {
		t.Fatal("the derived verifier differs from the generated one")
	}
	// The key from the environment (a Kubernetes secret), the file first.
	t.Setenv("CARACAL_TEST_SIGNER_KEY", skey)
	if _, fromEnv, err := LoadSigner("", "CARACAL_TEST_SIGNER_KEY"); err != nil || fromEnv.KeyHash() != v.KeyHash() {
		t.Fatalf("signer from the environment: %v", err)
	}
	otherKey, _, _ := GenerateKey("other")
	t.Setenv("CARACAL_TEST_SIGNER_KEY", otherKey)
	if _, fromFile, err := LoadSigner(path, "CARACAL_TEST_SIGNER_KEY"); err != nil || fromFile.KeyHash() != v.KeyHash() {
		t.Fatalf("the key file must win over the environment: %v", err)
	}
	t.Setenv("CARACAL_TEST_SIGNER_KEY", "")
	if _, _, err := LoadSigner("", "CARACAL_TEST_SIGNER_KEY"); err == nil || !strings.Contains(err.Error(), "CARACAL_TEST_SIGNER_KEY") {
		t.Fatalf("no key: %v, want an error naming the variable", err)
	}
	if _, _, err := LoadSigner(filepath.Join(t.TempDir(), "missing"), ""); err == nil {
		t.Fatal("a missing key file was accepted")
	}
	cp := Checkpoint{Origin: s.Name(), Size: 42, Root: tlog.Hash{9}}
	signed, err := cp.Sign(s)
	if err != nil {
		t.Fatal(err)
	}
	got, err := OpenCheckpoint(signed, derived)
	if err != nil || got != cp {
		t.Fatalf("open: %+v %v", got, err)
	}
	_, other, _ := GenerateKey("caracal-ledger")
	ov, _ := note.NewVerifier(other)
	if _, err := OpenCheckpoint(signed, ov); err == nil {
		t.Fatal("a checkpoint opened with another key")
	}
}

// frontierIndexes must name exactly what tlog reads to extend or hash a tree.
func TestFrontierIsAllTlogReads(t *testing.T) {
	all := memReader{}
	for n := int64(0); n < 200; n++ {
		front := memReader{}
		for _, x := range frontierIndexes(n) {
			front[x] = all[x]
		}
		h := tlog.RecordHash([]byte{byte(n)})
		add, err := tlog.StoredHashesForRecordHash(n, h, front)
		if err != nil {
			t.Fatalf("n=%d: %v", n, err)
		}
		for i, x := range add {
			all[tlog.StoredHashIndex(0, n)+int64(i)] = x
		}
		front2 := memReader{}
		for _, x := range frontierIndexes(n + 1) {
			front2[x] = all[x]
		}
		got, err := tlog.TreeHash(n+1, front2)
		if err != nil {
			t.Fatalf("n=%d: %v", n+1, err)
		}
		want, _ := tlog.TreeHash(n+1, all)
		if got != want {
			t.Fatalf("n=%d: root from the frontier differs", n+1)
		}
	}
}

func FuzzCheckProof(f *testing.F) {
	_, vkey, _ := GenerateKey("caracal-ledger")
	v, _ := note.NewVerifier(vkey)
	f.Add([]byte(`{"entry":{"seq":0},"index":0,"tree_size":1,"proof":[],"checkpoint":"x"}`))
	f.Add([]byte(`{}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		if _, err := CheckProof(data, v); err == nil {
			t.Fatal("a proof without a valid signature verified")
		}
	})
}
