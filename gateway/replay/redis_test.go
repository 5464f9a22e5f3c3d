package replay

import (
	"context"
	"io"
	"net"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/redis/rueidis"

	"github.com/caracal-gw/caracal/internal/testenv"
)

func benchClient(b *testing.B) rueidis.Client {
	b.Helper()
	addr := testenv.RedisAddr(b)
	c, err := rueidis.NewClient(rueidis.ClientOption{InitAddress: []string{addr}, DisableCache: true})
	if err != nil {
		b.Fatalf("cannot connect to Redis at %s: %v", addr, err)
	}
	b.Cleanup(c.Close)
	return c
}

func redisClient(t *testing.T, addr string) rueidis.Client {
	t.Helper()
	c, err := rueidis.NewClient(rueidis.ClientOption{InitAddress: []string{addr}, DisableCache: true})
	if err != nil {
		t.Fatalf("cannot connect to Redis at %s: %v", addr, err)
	}
	t.Cleanup(c.Close)
	return c
}

func newChecker(t *testing.T, client rueidis.Client, prefix string, window time.Duration) *Checker {
	t.Helper()
	c, err := New(client, Config{KeyPrefix: prefix, Window: window})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func testPrefix() string { return testenv.Name("crt") + ":nonce:" }

func TestRedisAcceptOnceThenReject(t *testing.T) {
	addr := testenv.RedisAddr(t)
	prefix := testPrefix()
	client := redisClient(t, addr)
	a := newChecker(t, client, prefix, 0)
	b := newChecker(t, redisClient(t, addr), prefix, 0)
	n := time.Now()
	nonce := []byte(testenv.Name("n"))
	if r := a.Check(nonce, ts(n), n); r != Accepted {
		t.Fatalf("first sight: %s", r)
	}
	if r := a.Check(nonce, ts(n), n); r != Replayed {
		t.Fatalf("repeat on the same replica: %s", r)
	}
	if r := b.Check(nonce, ts(n), n); r != Replayed {
		t.Fatalf("repeat on another replica: %s", r)
	}
	ctx := context.Background()
	ttl, err := client.Do(ctx, client.B().Pttl().Key(prefix+string(nonce)).Build()).AsInt64()
	if err != nil {
		t.Fatal(err)
	}
	if ttl <= 0 || ttl > 600_000 {
		t.Fatalf("key TTL %d ms, want within (0, 600000]", ttl)
	}
}

// Two gateways (two clients, two local caches) receive the same nonce from
// 32 goroutines at once: exactly one request is accepted.
func TestRedisSameNonceTwoReplicasConcurrently(t *testing.T) {
	addr := testenv.RedisAddr(t)
	prefix := testPrefix()
	replicas := []*Checker{
		newChecker(t, redisClient(t, addr), prefix, 0),
		newChecker(t, redisClient(t, addr), prefix, 0),
	}
	for round := range 20 {
		nonce := []byte(testenv.Name("race") + strconv.Itoa(round))
		n := time.Now()
		stamp := ts(n)
		var (
			wg      sync.WaitGroup
			mu      sync.Mutex
			results = map[Result]int{}
			start   = make(chan struct{})
		)
		for g := range 32 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				r := replicas[g%2].Check(nonce, stamp, n)
				mu.Lock()
				results[r]++
				mu.Unlock()
			}()
		}
		close(start)
		wg.Wait()
		if results[Accepted] != 1 || results[Replayed] != 31 {
			t.Fatalf("round %d: results %v, want 1 accepted and 31 replayed", round, results)
		}
	}
}

// With a 1 s window the key lives 2 s; a fresh replica (empty local cache)
// accepts the nonce again once Redis has expired it.
func TestRedisNonceAcceptedAgainAfterTTL(t *testing.T) {
	addr := testenv.RedisAddr(t)
	prefix := testPrefix()
	client := redisClient(t, addr)
	nonce := []byte(testenv.Name("ttl"))
	n := time.Now()
	if r := newChecker(t, client, prefix, time.Second).Check(nonce, ts(n), n); r != Accepted {
		t.Fatalf("first sight: %s", r)
	}
	if r := newChecker(t, client, prefix, time.Second).Check(nonce, ts(n), n); r != Replayed {
		t.Fatalf("immediate repeat: %s", r)
	}
	deadline := time.Now().Add(15 * time.Second)
	for {
		n := time.Now()
		r := newChecker(t, client, prefix, time.Second).Check(nonce, ts(n), n)
		if r == Accepted {
			return
		}
		if r != Replayed {
			t.Fatalf("while waiting for expiry: %s", r)
		}
		if time.Now().After(deadline) {
			t.Fatal("nonce never expired from Redis")
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// Redis goes away: first sights fail closed; repeats this replica already
// saw are still rejected from the local cache.
func TestRedisDownFailsClosed(t *testing.T) {
	addr := testenv.RedisAddr(t)
	proxy := startProxy(t, addr)
	c := newChecker(t, redisClient(t, proxy.addr()), testPrefix(), 0)
	n := time.Now()
	seen := []byte(testenv.Name("seen"))
	if r := c.Check(seen, ts(n), n); r != Accepted {
		t.Fatalf("before the outage: %s", r)
	}
	proxy.close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if r := c.CheckContext(ctx, []byte(testenv.Name("new")), ts(n), n); r != Unavailable {
		t.Fatalf("new nonce with Redis down: %s, want %s", r, Unavailable)
	}
	if r := c.CheckContext(ctx, seen, ts(n), n); r != Replayed {
		t.Fatalf("seen nonce with Redis down: %s, want %s", r, Replayed)
	}
}

// A client cannot even be built against a closed port; the caller then has
// no checker and must fail closed itself.
func TestRedisClosedPortRefusesClient(t *testing.T) {
	testenv.RedisAddr(t)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := l.Addr().String()
	l.Close()
	c, err := rueidis.NewClient(rueidis.ClientOption{InitAddress: []string{closed}, DisableCache: true})
	if err == nil {
		c.Close()
		t.Fatal("client built against a closed port")
	}
}

// tcpProxy forwards to Redis until closed, then refuses and drops
// everything, which is what a Redis outage looks like to the gateway.
type tcpProxy struct {
	l     net.Listener
	mu    sync.Mutex
	conns []net.Conn
	wg    sync.WaitGroup
}

func startProxy(t *testing.T, target string) *tcpProxy {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &tcpProxy{l: l}
	p.wg.Add(1)
	go p.serve(target)
	t.Cleanup(p.close)
	return p
}

func (p *tcpProxy) addr() string { return p.l.Addr().String() }

func (p *tcpProxy) serve(target string) {
	defer p.wg.Done()
	for {
		in, err := p.l.Accept()
		if err != nil {
			return
		}
		out, err := net.Dial("tcp", target)
		if err != nil {
			in.Close()
			continue
		}
		p.mu.Lock()
		p.conns = append(p.conns, in, out)
		p.mu.Unlock()
		p.wg.Add(2)
		go p.pipe(in, out)
		go p.pipe(out, in)
	}
}

func (p *tcpProxy) pipe(dst, src net.Conn) {
	defer p.wg.Done()
	_, _ = io.Copy(dst, src) // ends when either side closes
	dst.Close()
}

func (p *tcpProxy) close() {
	p.l.Close()
	p.mu.Lock()
	for _, c := range p.conns {
		c.Close()
	}
	p.conns = nil
	p.mu.Unlock()
	p.wg.Wait()
}
