package ledger

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

// Checkpoint is a signed statement of the tree: its size and root hash.
type Checkpoint struct {
	Origin string
	Size   int64
	Root   tlog.Hash
}

// Text is the checkpoint body (C2SP tlog-checkpoint layout):
// "<origin>\n<size>\n<base64 root>\n".
func (c Checkpoint) Text() string {
	return c.Origin + "\n" + strconv.FormatInt(c.Size, 10) + "\n" + base64.StdEncoding.EncodeToString(c.Root[:]) + "\n"
}

// ParseCheckpoint parses a checkpoint body.
func ParseCheckpoint(text string) (Checkpoint, error) {
	lines := strings.SplitAfter(text, "\n")
	if len(lines) != 4 || lines[3] != "" {
		return Checkpoint{}, errors.New("malformed checkpoint: want three lines")
	}
	var c Checkpoint
	c.Origin = strings.TrimSuffix(lines[0], "\n")
	n, err := strconv.ParseInt(strings.TrimSuffix(lines[1], "\n"), 10, 64)
	if err != nil || n < 0 {
		return Checkpoint{}, fmt.Errorf("malformed checkpoint size %q", lines[1])
	}
	c.Size = n
	h, err := base64.StdEncoding.DecodeString(strings.TrimSuffix(lines[2], "\n"))
	if err != nil || len(h) != tlog.HashSize {
		return Checkpoint{}, errors.New("malformed checkpoint root hash")
	}
	copy(c.Root[:], h)
	return c, nil
}

// Sign returns the signed note of c.
func (c Checkpoint) Sign(s note.Signer) (string, error) {
	msg, err := note.Sign(&note.Note{Text: c.Text()}, s)
	if err != nil {
		return "", fmt.Errorf("cannot sign the checkpoint: %w", err)
	}
	return string(msg), nil
}

// OpenCheckpoint verifies a signed checkpoint with v and parses it; its
// origin must be the key name.
func OpenCheckpoint(signed string, v note.Verifier) (Checkpoint, error) {
	n, err := note.Open([]byte(signed), note.VerifierList(v))
	if err != nil {
		return Checkpoint{}, fmt.Errorf("cannot verify the checkpoint signature: %w", err)
	}
	c, err := ParseCheckpoint(n.Text)
	if err != nil {
		return Checkpoint{}, err
	}
	if c.Origin != v.Name() {
		return Checkpoint{}, fmt.Errorf("checkpoint origin %q is not the key name %q", c.Origin, v.Name())
	}
	return c, nil
}

// GenerateKey returns a new Ed25519 signer and verifier key in note format.
func GenerateKey(name string) (signer, verifier string, err error) {
	return note.GenerateKey(rand.Reader, name)
}

// LoadSigner reads a signer key from the file path, or from the environment
// variable env when path is empty, and derives its verifier (for the
// background verifier).
func LoadSigner(path, env string) (note.Signer, note.Verifier, error) {
	key := os.Getenv(env)
	if path != "" {
		b, err := os.ReadFile(path)
		if err != nil {
			return nil, nil, fmt.Errorf("cannot read the signer key: %w", err)
		}
		key = string(b)
	}
	key = strings.TrimSpace(key)
	if key == "" {
		return nil, nil, fmt.Errorf("no signer key: give a key file or set %s", env)
	}
	s, err := note.NewSigner(key)
	if err != nil {
		return nil, nil, fmt.Errorf("cannot parse the signer key: %w", err)
	}
	// PRIVATE+KEY+<name>+<hash>+<base64(0x01 || seed)>
	parts := strings.SplitN(key, "+", 5)
	raw, err := base64.StdEncoding.DecodeString(parts[len(parts)-1])
	if err != nil || len(raw) != 1+ed25519.SeedSize || raw[0] != 1 {
		return nil, nil, errors.New("the signer key is not an Ed25519 note key")
	}
	vkey, err := note.NewEd25519VerifierKey(s.Name(), ed25519.NewKeyFromSeed(raw[1:]).Public().(ed25519.PublicKey))
	if err != nil {
		return nil, nil, fmt.Errorf("cannot derive the verifier key: %w", err)
	}
	v, err := note.NewVerifier(vkey)
	if err != nil {
		return nil, nil, fmt.Errorf("cannot derive the verifier key: %w", err)
	}
	return s, v, nil
}

// LoadVerifier parses a verifier key given inline or as a file path.
func LoadVerifier(keyOrPath string) (note.Verifier, error) {
	key := keyOrPath
	if b, err := os.ReadFile(keyOrPath); err == nil {
		key = string(b)
	}
	v, err := note.NewVerifier(strings.TrimSpace(key))
	if err != nil {
		return nil, fmt.Errorf("cannot parse the verifier key: %w", err)
	}
	return v, nil
}
