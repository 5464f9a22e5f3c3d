// Package kafkaopt maps Caracal's configuration (the guide's Java-client
// names) onto franz-go options, once, for the producer, the consumers and the
// admin commands.
package kafkaopt

import (
	"crypto/tls"
	"fmt"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl/plain"
	"github.com/twmb/franz-go/pkg/sasl/scram"

	"github.com/caracal-gw/caracal/internal/config"
)

// Client returns the connection options: brokers, client id, TLS and SASL.
func Client(c *config.Config) []kgo.Opt {
	opts := []kgo.Opt{kgo.SeedBrokers(c.Kafka.Brokers...)}
	if c.Kafka.ClientID != "" {
		opts = append(opts, kgo.ClientID(c.Kafka.ClientID))
	}
	if c.Kafka.TLS {
		opts = append(opts, kgo.DialTLSConfig(&tls.Config{MinVersion: tls.VersionTLS12}))
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
func Producer(c *config.Config) ([]kgo.Opt, error) {
	p := c.Kafka.Producer
	opts := Client(c)
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
