package ledger

import (
	"strings"
	"testing"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

// FuzzParseCheckpoint: parsing never panics, and a parsed checkpoint's Text
// parses back to the same checkpoint.
func FuzzParseCheckpoint(f *testing.F) {
	f.Add(Checkpoint{Origin: "caracal-ledger", Size: 42, Root: tlog.Hash{1, 2, 3}}.Text())
	f.Add("caracal-ledger\n0\nAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n")
	f.Add("x\n-1\n\n")
	f.Add("x\n+7\nAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n")
	f.Add("a\nb\nc\nd\n")
	f.Fuzz(func(t *testing.T, text string) {
		c, err := ParseCheckpoint(text)
		if err != nil {
			return
		}
		if c.Size < 0 || strings.Contains(c.Origin, "\n") {
			t.Fatalf("parsed a checkpoint with size %d, origin %q", c.Size, c.Origin)
		}
		c2, err := ParseCheckpoint(c.Text())
		if err != nil || c2 != c {
			t.Fatalf("Text of %+v parses to %+v, %v", c, c2, err)
		}
	})
}

// FuzzOpenCheckpoint: opening never panics; a note accepted by
// OpenCheckpoint carries a valid signature of the key and names it as
// origin. Seeds include a genuinely signed checkpoint, so the fuzzer can
// mutate valid notes; only unmodified signed text can pass.
func FuzzOpenCheckpoint(f *testing.F) {
	skey, vkey, err := GenerateKey("caracal-ledger")
	if err != nil {
		f.Fatal(err)
	}
	s, _ := note.NewSigner(skey)
	v, _ := note.NewVerifier(vkey)
	good := Checkpoint{Origin: "caracal-ledger", Size: 3, Root: tlog.Hash{7}}
	signed, err := good.Sign(s)
	if err != nil {
		f.Fatal(err)
	}
	other := Checkpoint{Origin: "someone-else", Size: 3, Root: tlog.Hash{7}}
	otherSigned, _ := other.Sign(s)
	f.Add(signed)
	f.Add(otherSigned)
	f.Add(strings.Replace(signed, "\n3\n", "\n4\n", 1))
	f.Add("caracal-ledger\n3\nAAAA\n\n— caracal-ledger AAAA\n")
	f.Fuzz(func(t *testing.T, text string) {
		c, err := OpenCheckpoint(text, v)
		if err != nil {
			return
		}
		if c.Origin != v.Name() {
			t.Fatalf("accepted origin %q", c.Origin)
		}
		// The only notes we signed here are the seeds: an accepted one must
		// carry the checkpoint we signed.
		if c != good {
			t.Fatalf("accepted a checkpoint that was never signed: %+v", c)
		}
	})
}
