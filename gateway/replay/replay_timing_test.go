package replay

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/caracal-gw/caracal/internal/testenv"
)

var sinkResult Result

// BenchmarkCheckLocalReject is the repeat this replica has seen: no Redis
// round trip, no allocation.
func BenchmarkCheckLocalReject(b *testing.B) {
	c, err := New(nil, Config{})
	if err != nil {
		b.Fatal(err)
	}
	n := time.Now()
	nonce, stamp := []byte("seen-nonce-0001"), ts(n)
	c.local.add(nonce, n.Add(time.Hour).UnixNano(), n.UnixNano())
	b.ReportAllocs()
	for b.Loop() {
		sinkResult = c.Check(nonce, stamp, n)
	}
}

// BenchmarkCheckRedis is first sight: one SET NX PX round trip to the real
// Redis per call, plus the local insert (the nonce string).
func BenchmarkCheckRedis(b *testing.B) {
	client := benchClient(b)
	c, err := New(client, Config{KeyPrefix: testenv.Name("crb") + ":nonce:", LocalEntries: 1 << 12})
	if err != nil {
		b.Fatal(err)
	}
	nonces := benchNonces(b.N)
	n := time.Now()
	stamp := ts(n)
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		if sinkResult = c.Check(nonces[i], stamp, n); sinkResult != Accepted {
			b.Fatal(sinkResult)
		}
	}
}

// BenchmarkRedisSetNaive is the twin with the typed builder and a string
// key, as one would write it first.
func BenchmarkRedisSetNaive(b *testing.B) {
	client := benchClient(b)
	prefix := testenv.Name("crb") + ":nonce:"
	nonces := benchNonces(b.N)
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		cmd := client.B().Set().Key(prefix + string(nonces[i])).Value("1").Nx().Px(600 * time.Second).Build()
		if err := client.Do(ctx, cmd).Error(); err != nil {
			b.Fatal(err)
		}
	}
}

func benchNonces(n int) [][]byte {
	base := testenv.Name("bn")
	out := make([][]byte, n)
	for i := range out {
		out[i] = []byte(base + strconv.Itoa(i))
	}
	return out
}
