package gateway

import (
	"sort"
	"strings"
	"testing"
)

// FuzzRouteMatch: routeTable.match never panics and returns the route with
// the longest prefix that the path starts with at a segment boundary (as
// "path == prefix or path starts with prefix + /"), or nil when none does.
func FuzzRouteMatch(f *testing.F) {
	f.Add("/openai\n/anthropic\n/openai/v2", []byte("/openai/v2/chat"))
	f.Add("/openai\n/openai-beta", []byte("/openai-beta/x"))
	f.Add("/\n/a", []byte("/b"))
	f.Add("/a/", []byte("/a"))
	f.Add("/a//\n/a", []byte("/a//x"))
	f.Add("", []byte(""))
	f.Add("/x\n/x", []byte("/x?q=1"))
	f.Fuzz(func(t *testing.T, prefixes string, path []byte) {
		var routes []*route
		for i, p := range strings.Split(prefixes, "\n") {
			if i == 16 {
				break
			}
			routes = append(routes, &route{prefix: []byte(strings.TrimSuffix(p, "/"))})
		}
		sort.SliceStable(routes, func(i, j int) bool { return len(routes[i].prefix) > len(routes[j].prefix) })
		rt := &routeTable{routes: routes}
		got := rt.match(path)
		best := -1
		for _, r := range routes {
			p := string(r.prefix)
			if p == "" || string(path) == p || strings.HasPrefix(string(path), p+"/") {
				best = max(best, len(p))
			}
		}
		switch {
		case got == nil && best >= 0:
			t.Fatalf("no route for %q, want one with a prefix of %d bytes", path, best)
		case got != nil && best < 0:
			t.Fatalf("route %q matched %q, want none", got.prefix, path)
		case got != nil && len(got.prefix) != best:
			t.Fatalf("route %q matched %q, want the longest prefix (%d bytes)", got.prefix, path, best)
		case got != nil && !strings.HasPrefix(string(path), string(got.prefix)):
			t.Fatalf("route %q is not a prefix of %q", got.prefix, path)
		}
	})
}
