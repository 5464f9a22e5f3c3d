// Package kafkaopt maps Caracal's configuration (the guide's Java-client
// names) onto franz-go options, once, for the producer, the consumers and the
// admin commands.
package kafkaopt

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl/plain"
	"github.com/twmb/franz-go/pkg/sasl/scram"

	"github.com/caracal-gw/caracal/internal/config"
	"github.com/caracal-gw/caracal/internal/rawconn"
)

// Client returns the connection options: brokers, client id, TLS and SASL.
func Client(c *config.Config) []kgo.Opt { return client(c, false) }

func client(c *config.Config, raw bool) []kgo.Opt {
	opts := []kgo.Opt{kgo.SeedBrokers(c.Kafka.Brokers...)}
	if c.Kafka.ClientID != "" {
		opts = append(opts, kgo.ClientID(c.Kafka.ClientID))
	}
	var tc *tls.Config
	if c.Kafka.TLS {
		tc = &tls.Config{MinVersion: tls.VersionTLS12}
	}
	switch {
	case raw:
		opts = append(opts, kgo.Dialer(rawDialer(tc)))
	case tc != nil:
		opts = append(opts, kgo.DialTLSConfig(tc))
	}
	s := c.Kafka.SASL
	switch s.Mechanism {
	case "PLAIN":
		opts = append(opts, kgo.SASL(plain.Auth{User: s.Username, Pass: s.Password}.AsMechanism()))
	case "SCRAM-SHA-256":
		opts = append(opts, kgo.SASL(scram.Auth{User: s.Username, Pass: s.Password}.AsSha256Mechanism()))
	case "SCRAM-SHA-512":
		opts = append(opts, kgo.SASL(scram.Auth{User: s.Username, Pass: s.Password}.AsSha512Mechanism()))
	}
	return opts
}

// Producer returns the client options plus the guide's producer settings:
// batch.size, linger.ms, compression.type, buffer.memory, acks and
// enable.idempotence. Records are partitioned by key (the agent id).
// With gateway.rawSocketIO the broker connections read and write with raw
// system calls, like the gateway's client and upstream sockets: an ordinary
// socket write after an idle spell wakes the runtime's sysmon thread, which
// then polls every 20 µs on the gateway's core.
func Producer(c *config.Config) ([]kgo.Opt, error) {
	p := c.Kafka.Producer
	opts := client(c, c.Gateway.RawSocketIO)
	codec, err := compression(p.CompressionType)
	if err != nil {
		return nil, err
	}
	opts = append(opts,
		kgo.ProducerBatchMaxBytes(int32(p.BatchSize)),
		kgo.ProducerLinger(time.Duration(p.LingerMs)*time.Millisecond),
		kgo.ProducerBatchCompression(codec),
		kgo.MaxBufferedBytes(int(p.BufferMemory)),
		// buffer.memory is the bound; franz-go's default cap of 10,000
		// records would otherwise refuse records long before it.
		kgo.MaxBufferedRecords(1<<24),
		kgo.ProduceRequestTimeout(p.RequestTimeout.D()),
		kgo.RecordPartitioner(kgo.StickyKeyPartitioner(nil)),
	)
	switch p.Acks {
	case "all", "-1":
		opts = append(opts, kgo.RequiredAcks(kgo.AllISRAcks()))
	case "1":
		opts = append(opts, kgo.RequiredAcks(kgo.LeaderAck()))
	case "0":
		opts = append(opts, kgo.RequiredAcks(kgo.NoAck()))
	}
	if !p.EnableIdempotence {
		opts = append(opts, kgo.DisableIdempotentWrite())
	}
	return opts, nil
}

// rawDialer dials brokers over internal/rawconn sockets, with TLS on top when
// tc is set (kgo.Dialer replaces kgo.DialTLSConfig, so the handshake is ours:
// the server name is the broker's host, as franz-go sets it).
func rawDialer(tc *tls.Config) func(ctx context.Context, network, host string) (net.Conn, error) {
	d := &net.Dialer{Timeout: 10 * time.Second}
	return func(ctx context.Context, network, host string) (net.Conn, error) {
		c, err := d.DialContext(ctx, network, host)
		if err != nil {
			return nil, err
		}
		c = rawconn.Wrap(c)
		if tc == nil {
			return c, nil
		}
		cfg := tc.Clone()
		if name, _, err := net.SplitHostPort(host); err == nil {
			cfg.ServerName = name
		}
		tlsc := tls.Client(c, cfg)
		if err := tlsc.HandshakeContext(ctx); err != nil {
			c.Close()
			return nil, err
		}
		return tlsc, nil
	}
}

// Consumer returns the client options plus the guide's consumer settings for
// the group: fetch.min.bytes, fetch.max.wait.ms, isolation.level and, since
// enable.auto.commit must be false, no auto-commit. max.poll.records is the
// caller's PollRecords argument (MaxPollRecords).
func Consumer(c *config.Config, group string, topics ...string) []kgo.Opt {
	k := c.Kafka.Consumer
	opts := append(Client(c),
		kgo.ConsumerGroup(group),
		kgo.ConsumeTopics(topics...),
		kgo.FetchMinBytes(k.FetchMinBytes),
		kgo.FetchMaxWait(time.Duration(k.FetchMaxWaitMs)*time.Millisecond),
		kgo.DisableAutoCommit(),
	)
	if k.IsolationLevel == "read_committed" {
		opts = append(opts, kgo.FetchIsolationLevel(kgo.ReadCommitted()))
	} else {
		opts = append(opts, kgo.FetchIsolationLevel(kgo.ReadUncommitted()))
	}
	return opts
}

// MaxPollRecords is the guide's max.poll.records.
func MaxPollRecords(c *config.Config) int { return c.Kafka.Consumer.MaxPollRecords }

func compression(name string) (kgo.CompressionCodec, error) {
	switch name {
	case "none":
		return kgo.NoCompression(), nil
	case "gzip":
		return kgo.GzipCompression(), nil
	case "snappy":
		return kgo.SnappyCompression(), nil
	case "lz4":
		return kgo.Lz4Compression(), nil
	case "zstd":
		return kgo.ZstdCompression(), nil
	}
	return kgo.CompressionCodec{}, fmt.Errorf("config key kafka.producer.compression.type: unknown codec %q", name)
}
