package config

import (
	"fmt"
	"net"
	"net/url"
	"strings"
	"time"
)

// Validate checks every value and returns the first bad one, naming its key.
func (c *Config) Validate() error {
	checks := []struct {
		key string
		bad bool
		why string
	}{
		{"dbPoolSize", c.DBPoolSize < 1 || c.DBPoolSize > 1000, "must be between 1 and 1000"},
		{"dbMaxOverflow", c.DBMaxOverflow < 0 || c.DBMaxOverflow > 1000, "must be between 0 and 1000"},
		{"dbPoolTimeout", c.DBPoolTimeout.D() <= 0, "must be positive"},
		{"maxConcurrentRequests", c.MaxConcurrentRequests < 1, "must be at least 1"},
		{"requestTimeout", c.RequestTimeout.D() < time.Millisecond, "must be at least 1ms"},
		{"policyCacheTTL", c.PolicyCacheTTL.D() < time.Second, "must be at least 1s"},
		{"policyCacheMaxSize", c.PolicyCacheMaxSize < 16, "must be at least 16"},
		{"database.url", !validDSN(c.Database.URL), "must be a postgres:// URL or a key=value connection string"},
		{"redis.addrs", !validAddrs(c.Redis.Addrs), "must list host:port addresses"},
		{"redis.db", c.Redis.DB < 0 || c.Redis.DB > 15, "must be between 0 and 15"},
		{"redis.budgetReadyKey", c.Redis.BudgetReadyKey == "", "must not be empty"},
		{"snapshots.schedule", c.Snapshots.Schedule.D() < 0 || (c.Snapshots.Schedule.D() > 0 && c.Snapshots.Schedule.D() < time.Minute), "must be 0 (off) or at least 1m"},
		{"snapshots.retention", c.Snapshots.Retention < 1, "must be at least 1"},
		{"ledger.batchMaxRecords", c.Ledger.BatchMaxRecords < 1 || c.Ledger.BatchMaxRecords > 1000000, "must be between 1 and 1000000"},
		{"ledger.checkpointEvery", c.Ledger.CheckpointEvery < 1 || c.Ledger.CheckpointEvery > 100000000, "must be between 1 and 100000000 entries"},
		{"ledger.checkpointInterval", c.Ledger.CheckpointInterval.D() < 10*time.Millisecond, "must be at least 10ms"},
		{"aggregator.spendGaugeMaxAgents", c.Aggregator.SpendGaugeMaxAgents < 0 || c.Aggregator.SpendGaugeMaxAgents > 10000, "must be between 0 (off) and 10000"},
		{"aggregator.spendGaugeInterval", c.Aggregator.SpendGaugeInterval.D() < time.Second, "must be at least 1s"},
		{"kafka.brokers", !validAddrs(c.Kafka.Brokers), "must list host:port addresses"},
		{"kafka.topics.partitions", c.Kafka.Topics.Partitions < 1, "must be at least 1"},
		{"kafka.topics.replicationFactor", c.Kafka.Topics.ReplicationFactor < 1, "must be at least 1"},
		{"kafka.topics.minInsyncReplicas", c.Kafka.Topics.MinInsyncReplicas < 1 || c.Kafka.Topics.MinInsyncReplicas > c.Kafka.Topics.ReplicationFactor, "must be between 1 and the replication factor"},
		{"kafka.topics.retention", c.Kafka.Topics.Retention.D() < time.Hour, "must be at least 1h"},
		{"kafka.producer.batch.size", c.Kafka.Producer.BatchSize < 1024 || c.Kafka.Producer.BatchSize > 64<<20, "must be between 1024 and 67108864"},
		{"kafka.producer.linger.ms", c.Kafka.Producer.LingerMs < 0 || c.Kafka.Producer.LingerMs > 60000, "must be between 0 and 60000"},
		{"kafka.producer.compression.type", !oneOf(c.Kafka.Producer.CompressionType, "none", "gzip", "snappy", "lz4", "zstd"), "must be none, gzip, snappy, lz4 or zstd"},
		{"kafka.producer.buffer.memory", c.Kafka.Producer.BufferMemory < 1<<20, "must be at least 1048576"},
		{"kafka.producer.acks", !oneOf(c.Kafka.Producer.Acks, "all", "-1", "1", "0"), "must be all, -1, 1 or 0"},
		{"kafka.producer.enable.idempotence", c.Kafka.Producer.EnableIdempotence && !oneOf(c.Kafka.Producer.Acks, "all", "-1"), "requires acks=all"},
		{"kafka.producer.request.timeout", c.Kafka.Producer.RequestTimeout.D() < time.Second, "must be at least 1s"},
		{"kafka.consumer.fetch.min.bytes", c.Kafka.Consumer.FetchMinBytes < 1, "must be at least 1"},
		{"kafka.consumer.fetch.max.wait.ms", c.Kafka.Consumer.FetchMaxWaitMs < 1 || c.Kafka.Consumer.FetchMaxWaitMs > 60000, "must be between 1 and 60000"},
		{"kafka.consumer.max.poll.records", c.Kafka.Consumer.MaxPollRecords < 1 || c.Kafka.Consumer.MaxPollRecords > 100000, "must be between 1 and 100000"},
		{"kafka.consumer.enable.auto.commit", c.Kafka.Consumer.EnableAutoCommit, "must be false: consumers commit offsets with the rows they produce"},
		{"kafka.consumer.isolation.level", !oneOf(c.Kafka.Consumer.IsolationLevel, "read_committed", "read_uncommitted"), "must be read_committed or read_uncommitted"},
		{"kafka.sasl.mechanism", !oneOf(c.Kafka.SASL.Mechanism, "", "PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"), "must be PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512"},
		{"gateway.listen", !validAddr(c.Gateway.Listen), "must be host:port"},
		{"gateway.adminListen", !validAddr(c.Gateway.AdminListen), "must be host:port"},
		{"gateway.certFile", !c.Gateway.Plaintext && (c.Gateway.CertFile == "") != (c.Gateway.KeyFile == ""), "and gateway.keyFile must be set together"},
		{"gateway.trustedProxies", !validCIDRs(c.Gateway.TrustedProxies), "must list IP addresses or CIDR ranges"},
		{"gateway.maxRequestBodyBytes", c.Gateway.MaxRequestBody < 1024, "must be at least 1024"},
		{"gateway.maxResponseBodyBytes", c.Gateway.MaxResponseBody < 1024, "must be at least 1024"},
		{"gateway.maxHeaderBytes", c.Gateway.MaxHeaderBytes < 1024 || c.Gateway.MaxHeaderBytes > 1<<20, "must be between 1024 and 1048576"},
		{"gateway.replayWindow", c.Gateway.ReplayWindow.D() < time.Second, "must be at least 1s"},
		{"gateway.shutdownTimeout", c.Gateway.ShutdownTimeout.D() < 0, "must not be negative"},
		{"gateway.leaseSizeMicros", c.Gateway.LeaseSize < 1, "must be at least 1"},
		{"gateway.leaseTTL", c.Gateway.LeaseTTL.D() < time.Second, "must be at least 1s"},
		{"gateway.upstreamMaxConnsPerHost", c.Gateway.UpstreamIdleConns < 1, "must be at least 1"},
		{"gateway.maxConnsPerAddr", c.Gateway.MaxConnsPerAddr < 1, "must be at least 1"},
		{"gateway.maxConns", c.Gateway.MaxConns < c.Gateway.MaxConnsPerAddr, "must be at least gateway.maxConnsPerAddr"},
		{"gateway.idleTimeout", c.Gateway.IdleTimeout.D() < time.Second, "must be at least 1s"},
		{"gateway.jwksRefresh", c.Gateway.JWKSRefresh.D() <= 0, "must be positive"},
		{"gateway.enablePprof", c.Gateway.EnablePprof && c.Gateway.AdminToken == "" && !loopbackAddr(c.Gateway.AdminListen),
			"pprof on a non-loopback gateway.adminListen needs gateway.adminToken"},
		{"gateway.spoolMaxBytes", c.Gateway.SpoolMaxBytes < 1<<20, "must be at least 1048576"},
		{"log.level", !oneOf(c.Log.Level, "debug", "info", "warn", "error"), "must be debug, info, warn or error"},
		{"log.format", !oneOf(c.Log.Format, "text", "json"), "must be text or json"},
	}
	for _, ch := range checks {
		if ch.bad {
			return fmt.Errorf("config key %s: %s", ch.key, ch.why)
		}
	}
	return nil
}

func oneOf(v string, allowed ...string) bool {
	for _, a := range allowed {
		if v == a {
			return true
		}
	}
	return false
}

func validAddr(a string) bool {
	_, port, err := net.SplitHostPort(a)
	return err == nil && port != ""
}

// loopbackAddr reports whether host:port listens on loopback only.
func loopbackAddr(a string) bool {
	host, _, err := net.SplitHostPort(a)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

func validAddrs(as []string) bool {
	if len(as) == 0 {
		return false
	}
	for _, a := range as {
		if !validAddr(a) {
			return false
		}
	}
	return true
}

func validCIDRs(cs []string) bool {
	for _, c := range cs {
		if _, _, err := net.ParseCIDR(c); err != nil && net.ParseIP(c) == nil {
			return false
		}
	}
	return true
}

func validDSN(s string) bool {
	if strings.HasPrefix(s, "postgres://") || strings.HasPrefix(s, "postgresql://") {
		_, err := url.Parse(s)
		return err == nil
	}
	return strings.Contains(s, "=")
}
