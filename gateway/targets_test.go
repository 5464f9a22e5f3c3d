package gateway

import (
	"context"
	"net"
	"net/netip"
	"strings"
	"sync"
	"testing"

	"github.com/caracal-gw/caracal/gateway/ssrf"
	"github.com/caracal-gw/caracal/internal/store"
)

type fakeResolver map[string][]netip.Addr

func (r fakeResolver) LookupNetIP(_ context.Context, _, host string) ([]netip.Addr, error) {
	if a, ok := r[host]; ok {
		return a, nil
	}
	return nil, &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}
}

// TestGatewayClientChosenTargets: a route that lets the client name the
// target forwards only to hosts on the agent's allow-list that resolve to
// public addresses; the dialer never sees a private address.
func TestGatewayClientChosenTargets(t *testing.T) {
	var mu sync.Mutex
	var dialed []string
	var mockAddr string
	so := StartOptions{TargetDial: ssrf.Options{
		Resolver: fakeResolver{
			"tool.example":    {netip.MustParseAddr("93.184.216.34")},
			"rebind.example":  {netip.MustParseAddr("10.0.0.5")},
			"mixed.example":   {netip.MustParseAddr("93.184.216.35"), netip.MustParseAddr("169.254.169.254")},
			"notlisted.other": {netip.MustParseAddr("93.184.216.36")},
		},
		// Every checked public address is served by the loopback mock.
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			mu.Lock()
			dialed = append(dialed, addr)
			mu.Unlock()
			return (&net.Dialer{}).DialContext(ctx, network, mockAddr)
		},
	}}
	s := newStackWith(t, 10_000_000, 5_000_000, so)
	mockAddr = s.mockAddr
	ctx := context.Background()
	if _, err := store.SetRoute(ctx, s.db, store.RouteSpec{Name: "tools", Prefix: "/tools", UpstreamURLs: []string{"http://unused.invalid"},
		Provider: "generic", Pricing: "per_request", PricePerRequest: 100, AllowTargetURL: true, StripPrefix: true, CredentialRef: "none"}); err != nil {
		t.Fatal(err)
	}
	for _, host := range []string{"tool.example", "rebind.example", "mixed.example", "127.0.0.1", "localhost"} {
		if err := store.AddAllow(ctx, s.db, s.bot, "target", host); err != nil {
			t.Fatal(err)
		}
	}
	s.waitTables(t, "tools")

	cases := []struct {
		name, target string
		status       int
	}{
		{"allowed public host", "http://tool.example/v1/chat/completions", 200},
		{"no target header", "", 400},
		{"host not on the allow-list", "http://notlisted.other/v1/chat/completions", 403},
		{"loopback literal", "http://127.0.0.1/v1/chat/completions", 403},
		{"loopback in decimal", "http://2130706433/v1/chat/completions", 403},
		{"metadata address", "http://169.254.169.254/latest/meta-data", 403},
		{"userinfo trick", "http://tool.example@127.0.0.1/v1/chat/completions", 403},
		{"other scheme", "file:///etc/passwd", 403},
		{"allowed name resolving to a private address", "http://rebind.example/v1/chat/completions", 502},
		{"allowed name with one private address", "http://mixed.example/v1/chat/completions", 502},
	}
	for _, tc := range cases {
		req := strings.NewReader(chatBody)
		resp, body := s.postWith(t, "/tools", req, map[string]string{"X-Caracal-Target": tc.target})
		if resp.StatusCode != tc.status {
			t.Errorf("%s: status %d, want %d: %s", tc.name, resp.StatusCode, tc.status, body)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	for _, d := range dialed {
		ap, err := netip.ParseAddrPort(d)
		if err != nil || ssrf.Denied(ap.Addr()) {
			t.Errorf("dialed %s: a denied address was connected to", d)
		}
	}
	if len(dialed) == 0 {
		t.Fatal("the allowed target was never dialed")
	}
}

// TestGatewayBrokenRouteFailsClosed: a route whose credential cannot be read
// is refused with 503; the other routes keep working.
func TestGatewayBrokenRouteFailsClosed(t *testing.T) {
	s := newStack(t, 5_000_000)
	if _, err := store.SetRoute(context.Background(), s.db, store.RouteSpec{Name: "broken", Prefix: "/broken",
		UpstreamURLs: []string{"http://" + s.mockAddr + "/v1"}, CredentialRef: "env:CARACAL_TEST_UNSET_CREDENTIAL",
		Provider: "openai", Pricing: "tokens", StripPrefix: true}); err != nil {
		t.Fatal(err)
	}
	s.waitTables(t, "broken")
	if resp, body := s.post(t, "/broken/chat/completions", s.key, chatBody); resp.StatusCode != 503 {
		t.Fatalf("broken route: %d %s", resp.StatusCode, body)
	}
	if resp, body := s.post(t, "/openai/chat/completions", s.key, chatBody); resp.StatusCode != 200 {
		t.Fatalf("a healthy route next to a broken one: %d %s", resp.StatusCode, body)
	}
}
