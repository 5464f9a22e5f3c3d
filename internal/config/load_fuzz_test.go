package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

// readsFiles reports whether the document sets a key that makes Load read
// another file (database.passwordFile): the fuzzer must not make the test
// read /dev/zero or the machine's files.
func readsFiles(data []byte) bool {
	var root yaml.Node
	if yaml.Unmarshal(data, &root) != nil {
		return strings.Contains(strings.ToLower(string(data)), "file")
	}
	found := false
	var rec func(n *yaml.Node)
	rec = func(n *yaml.Node) {
		if n == nil || found {
			return
		}
		if n.Kind == yaml.ScalarNode && strings.Contains(strings.ToLower(n.Value), "file") {
			found = true
		}
		for _, c := range n.Content {
			rec(c)
		}
		// Aliases point at nodes already in the tree: not followed.
	}
	rec(&root)
	return found
}

// FuzzLoad: Load of any file never panics; an error always names the file or
// a config key; a loaded config validates again and redacts.
func FuzzLoad(f *testing.F) {
	f.Add([]byte("dbPoolSize: 10\ngateway:\n  listen: 0.0.0.0:8080\n  adminToken: t0ken\n"))
	f.Add([]byte("gateway:\n  maxHeaderBytes: 10\n"))
	f.Add([]byte("kafka:\n  producer:\n    linger.ms: -1\n"))
	f.Add([]byte("unknownKey: 1\n"))
	f.Add([]byte("requestTimeout: forever\n"))
	f.Add([]byte("redis:\n  addrs: [\"a\", 1, {x: y}]\n"))
	f.Add([]byte("- a\n- b\n"))
	f.Add([]byte("a: &x [*x]\n"))
	f.Add([]byte("\t\x00"))
	keys := Keys()
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) > 64<<10 || readsFiles(data) {
			return
		}
		path := filepath.Join(t.TempDir(), "caracal.yaml")
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
		c, err := Load(path, nil, nil)
		if err != nil {
			msg := err.Error()
			if strings.Contains(msg, path) {
				return
			}
			for _, k := range keys {
				if strings.Contains(msg, k) {
					return
				}
			}
			t.Fatalf("error names neither the file nor a key: %q", msg)
		}
		if err := c.Validate(); err != nil {
			t.Fatalf("a loaded config does not validate again: %v", err)
		}
		_ = c.Redacted()
	})
}
