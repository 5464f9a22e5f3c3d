// Package config loads Caracal's one configuration: a YAML file, then CARACAL_*
// environment overrides, then --set flags, validated once. An unknown key or a
// bad value is an error that names the key.
package config

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// Config is the whole configuration of every Caracal role. The top-level
// tuning keys carry the production guide's names so that its "gateway.config"
// block can be pasted into a file unchanged.
type Config struct {
	// Guide keys (Performance Tuning / Gateway Proxy Tuning).
	DBPoolSize            int      `yaml:"dbPoolSize"`
	DBMaxOverflow         int      `yaml:"dbMaxOverflow"`
	DBPoolTimeout         Duration `yaml:"dbPoolTimeout"`
	MaxConcurrentRequests int      `yaml:"maxConcurrentRequests"`
	RequestTimeout        Duration `yaml:"requestTimeout"`
	PolicyCacheTTL        Duration `yaml:"policyCacheTTL"`
	PolicyCacheMaxSize    int      `yaml:"policyCacheMaxSize"`

	Database Database `yaml:"database"`
	Redis    Redis    `yaml:"redis"`
	Kafka    Kafka    `yaml:"kafka"`
	Gateway  Gateway  `yaml:"gateway"`
	Log      Log      `yaml:"log"`
	// Snapshots are taken by the metrics consumer process (issue 6).
	Snapshots Snapshots `yaml:"snapshots"`
	// Ledger tunes the ledger consumer.
	Ledger Ledger `yaml:"ledger"`
	// Aggregator tunes the metrics consumer.
	Aggregator Aggregator `yaml:"aggregator"`

	// dbPassword is CARACAL_DATABASE_PASSWORD, put into database.url once
	// every other source is applied.
	dbPassword string
}

// Snapshots schedules recovery snapshots (the ledger head and its signed
// checkpoint, the spend totals, every consumer group's offsets) in the
// metrics consumer process; `caracal snapshot restore` reads them.
type Snapshots struct {
	// Schedule is the time between two snapshots; 0 turns them off.
	Schedule Duration `yaml:"schedule"`
	// Retention is how many snapshots are kept; older ones are pruned.
	Retention int `yaml:"retention"`
}

// Ledger tunes the ledger consumer (`caracal consume ledger`).
type Ledger struct {
	// BatchMaxRecords bounds the records the ledger writer stores in one
	// database transaction. A batch spans several polls (each at most
	// kafka.consumer.max.poll.records) while the consumer has records
	// ready; it never waits for records to fill one. A value at or below
	// max.poll.records makes every poll one transaction.
	BatchMaxRecords int `yaml:"batchMaxRecords"`
	// CheckpointEvery and CheckpointInterval: the sealer signs a checkpoint
	// once this many entries were sealed since the last one, or once this
	// long passed since it and some were. `caracal consume ledger
	// --checkpoint-every/--checkpoint-interval` override them.
	CheckpointEvery    int64    `yaml:"checkpointEvery"`
	CheckpointInterval Duration `yaml:"checkpointInterval"`
}

// Aggregator tunes the metrics consumer (`caracal consume metrics`).
type Aggregator struct {
	// SpendGaugeMaxAgents bounds the agents exported as
	// caracal_agent_spend_micros{agent,window}: those with the largest spend
	// in the current calendar month (ties by name); 0 exports none.
	SpendGaugeMaxAgents int `yaml:"spendGaugeMaxAgents"`
	// SpendGaugeInterval is how often the gauges are read again from the
	// spend buckets in Redis.
	SpendGaugeInterval Duration `yaml:"spendGaugeInterval"`
}

// Database is the PostgreSQL connection.
type Database struct {
	// URL is a libpq connection string or URL. The password may come from
	// CARACAL_DATABASE_PASSWORD or passwordFile so it never sits in the file.
	URL          string `yaml:"url" secret:"true"`
	PasswordFile string `yaml:"passwordFile"`
	// PgBouncer marks a transaction-pooling PgBouncer in front of Postgres:
	// statements use the simple protocol and LISTEN uses DirectURL.
	PgBouncer bool   `yaml:"pgbouncer"`
	DirectURL string `yaml:"directURL" secret:"true"`
}

// Redis is the budget, nonce and aggregate store.
type Redis struct {
	Addrs        []string `yaml:"addrs"`
	Username     string   `yaml:"username"`
	Password     string   `yaml:"password" secret:"true"`
	DB           int      `yaml:"db"`
	TLS          bool     `yaml:"tls"`
	DialTimeout  Duration `yaml:"dialTimeout"`
	WriteTimeout Duration `yaml:"writeTimeout"`
	// BudgetReadyKey is set once the spend totals are complete (by
	// `caracal reconcile` and the metrics consumer); gateways fail closed
	// while it is missing, e.g. after Redis lost its data.
	BudgetReadyKey string `yaml:"budgetReadyKey"`
}

// Kafka holds brokers, topics and the guide's producer and consumer settings
// under their Java client names.
type Kafka struct {
	Brokers  []string      `yaml:"brokers"`
	ClientID string        `yaml:"clientID"`
	TLS      bool          `yaml:"tls"`
	SASL     SASL          `yaml:"sasl"`
	Topics   Topics        `yaml:"topics"`
	Producer KafkaProducer `yaml:"producer"`
	Consumer KafkaConsumer `yaml:"consumer"`
}

// SASL is the Kafka authentication (PLAIN or SCRAM-SHA-512), for managed clusters.
type SASL struct {
	Mechanism string `yaml:"mechanism"`
	Username  string `yaml:"username"`
	Password  string `yaml:"password" secret:"true"`
}

// Topics names the topics of the design and how they are created.
type Topics struct {
	Metering          string   `yaml:"metering"`
	Decisions         string   `yaml:"decisions"`
	Audit             string   `yaml:"audit"`
	DLQ               string   `yaml:"dlq"`
	Partitions        int      `yaml:"partitions"`
	ReplicationFactor int      `yaml:"replicationFactor"`
	MinInsyncReplicas int      `yaml:"minInsyncReplicas"`
	Retention         Duration `yaml:"retention"`
}

// KafkaProducer is the guide's producer block.
type KafkaProducer struct {
	BatchSize         int      `yaml:"batch.size"`
	LingerMs          int      `yaml:"linger.ms"`
	CompressionType   string   `yaml:"compression.type"`
	BufferMemory      int64    `yaml:"buffer.memory"`
	Acks              string   `yaml:"acks"`
	EnableIdempotence bool     `yaml:"enable.idempotence"`
	RequestTimeout    Duration `yaml:"request.timeout"`
}

// KafkaConsumer is the guide's consumer block.
type KafkaConsumer struct {
	FetchMinBytes    int32  `yaml:"fetch.min.bytes"`
	FetchMaxWaitMs   int    `yaml:"fetch.max.wait.ms"`
	MaxPollRecords   int    `yaml:"max.poll.records"`
	EnableAutoCommit bool   `yaml:"enable.auto.commit"`
	IsolationLevel   string `yaml:"isolation.level"`
	GroupPrefix      string `yaml:"groupPrefix"`
}

// Gateway holds the listeners and proxy limits.
type Gateway struct {
	Listen            string   `yaml:"listen"`
	AdminListen       string   `yaml:"adminListen"`
	Plaintext         bool     `yaml:"plaintext"`
	CertFile          string   `yaml:"certFile"`
	KeyFile           string   `yaml:"keyFile"`
	ClientCAFile      string   `yaml:"clientCAFile"`
	TrustedProxies    []string `yaml:"trustedProxies"`
	MaxRequestBody    int      `yaml:"maxRequestBodyBytes"`
	MaxResponseBody   int      `yaml:"maxResponseBodyBytes"`
	MaxHeaderBytes    int      `yaml:"maxHeaderBytes"`
	ReplayWindow      Duration `yaml:"replayWindow"`
	ShutdownTimeout   Duration `yaml:"shutdownTimeout"`
	LeaseSize         int64    `yaml:"leaseSizeMicros"`
	LeaseTTL          Duration `yaml:"leaseTTL"`
	AdminToken        string   `yaml:"adminToken" secret:"true"`
	EnablePprof       bool     `yaml:"enablePprof"`
	UpstreamIdleConns int      `yaml:"upstreamMaxConnsPerHost"`
	// Connection caps at accept, per client address and in total.
	MaxConnsPerAddr int      `yaml:"maxConnsPerAddr"`
	MaxConns        int      `yaml:"maxConns"`
	IdleTimeout     Duration `yaml:"idleTimeout"`
	// SpoolDir holds the disk spool (events while Kafka is unreachable,
	// strict-mode intents); empty: $TMPDIR/caracal-spool-<host>-<port>.
	// In Kubernetes, a volume that survives the container.
	SpoolDir      string `yaml:"spoolDir"`
	SpoolMaxBytes int64  `yaml:"spoolMaxBytes"`
	// RawSocketIO makes socket reads and writes on client and upstream
	// connections raw system calls (internal/rawconn): fewer thread switches
	// per request. false: the Go runtime's ordinary socket I/O.
	RawSocketIO bool `yaml:"rawSocketIO"`
	// JWKSRefresh is how often every JWT issuer's JWKS is fetched again, so
	// a key the identity provider removed stops being trusted.
	JWKSRefresh Duration `yaml:"jwksRefresh"`
}

// Log selects the log format and level.
type Log struct {
	Level  string `yaml:"level"`
	Format string `yaml:"format"`
}

// Default returns the configuration used when a key is not set: the guide's
// production values and loopback addresses of the local services.
func Default() Config {
	return Config{
		DBPoolSize:            20,
		DBMaxOverflow:         10,
		DBPoolTimeout:         Duration(30 * time.Second),
		MaxConcurrentRequests: 1000,
		RequestTimeout:        Duration(30 * time.Second),
		PolicyCacheTTL:        Duration(60 * time.Second),
		PolicyCacheMaxSize:    50000,
		Database:              Database{URL: "postgres://caracal:caracal@127.0.0.1:5432/caracal?sslmode=disable"},
		Snapshots:             Snapshots{Schedule: Duration(time.Hour), Retention: 48},
		Ledger:                Ledger{BatchMaxRecords: 5000, CheckpointEvery: 10000, CheckpointInterval: Duration(2 * time.Second)},
		Aggregator:            Aggregator{SpendGaugeMaxAgents: 500, SpendGaugeInterval: Duration(15 * time.Second)},
		Redis: Redis{
			Addrs:          []string{"127.0.0.1:6379"},
			DialTimeout:    Duration(2 * time.Second),
			WriteTimeout:   Duration(2 * time.Second),
			BudgetReadyKey: "cr:budget:ready",
		},
		Kafka: Kafka{
			Brokers:  []string{"127.0.0.1:9092"},
			ClientID: "caracal",
			Topics: Topics{
				Metering:          "caracal.metering.events",
				Decisions:         "caracal.policy.decisions",
				Audit:             "caracal.audit.events",
				DLQ:               "caracal.dlq",
				Partitions:        12,
				ReplicationFactor: 3,
				MinInsyncReplicas: 2,
				Retention:         Duration(7 * 24 * time.Hour),
			},
			Producer: KafkaProducer{
				BatchSize:         32768,
				LingerMs:          10,
				CompressionType:   "snappy",
				BufferMemory:      67108864,
				Acks:              "all",
				EnableIdempotence: true,
				RequestTimeout:    Duration(30 * time.Second),
			},
			Consumer: KafkaConsumer{
				FetchMinBytes:    1024,
				FetchMaxWaitMs:   500,
				MaxPollRecords:   500,
				EnableAutoCommit: false,
				IsolationLevel:   "read_committed",
				GroupPrefix:      "caracal",
			},
		},
		Gateway: Gateway{
			Listen:            ":8443",
			AdminListen:       "127.0.0.1:9090",
			MaxRequestBody:    8 << 20,
			MaxResponseBody:   64 << 20,
			MaxHeaderBytes:    16 << 10,
			ReplayWindow:      Duration(300 * time.Second),
			ShutdownTimeout:   Duration(25 * time.Second),
			LeaseSize:         1_000_000,
			LeaseTTL:          Duration(30 * time.Second),
			UpstreamIdleConns: 512,
			MaxConnsPerAddr:   1024,
			MaxConns:          10000,
			IdleTimeout:       Duration(2 * time.Minute),
			SpoolMaxBytes:     1 << 30,
			RawSocketIO:       true,
			JWKSRefresh:       Duration(5 * time.Minute),
		},
		Log: Log{Level: "info", Format: "text"},
	}
}

// Load reads the file at path (none when empty) over the defaults, applies
// the environment (as returned by os.Environ) and the key=value overrides,
// and validates the result.
func Load(path string, environ []string, overrides []string) (*Config, error) {
	c := Default()
	if path != "" {
		data, err := os.ReadFile(path)
		if err != nil {
			return nil, fmt.Errorf("cannot read config file: %w", err)
		}
		if err := decodeStrict(data, &c); err != nil {
			return nil, fmt.Errorf("config %s: %w", path, err)
		}
	}
	if err := applyEnv(&c, environ); err != nil {
		return nil, err
	}
	for _, o := range overrides {
		k, v, ok := strings.Cut(o, "=")
		if !ok {
			return nil, fmt.Errorf("config override %q: want key=value", o)
		}
		if err := Set(&c, k, v); err != nil {
			return nil, err
		}
	}
	if err := c.resolveSecrets(); err != nil {
		return nil, err
	}
	if err := c.Validate(); err != nil {
		return nil, err
	}
	return &c, nil
}

func decodeStrict(data []byte, c *Config) error {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	err := dec.Decode(c)
	if errors.Is(err, errEOF) || err == nil {
		return nil
	}
	return nameKeys(data, cleanYAMLError(err))
}

// nameKeys prefixes "line N:" in yaml.v3 messages with the key path found on
// that line, so a bad value names its key.
func nameKeys(data []byte, err error) error {
	var root yaml.Node
	if yaml.Unmarshal(data, &root) != nil {
		return err
	}
	paths := map[int]string{}
	var rec func(n *yaml.Node, prefix string)
	rec = func(n *yaml.Node, prefix string) {
		for _, c := range n.Content {
			if n.Kind != yaml.MappingNode {
				rec(c, prefix)
			}
		}
		if n.Kind != yaml.MappingNode {
			return
		}
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			p := k.Value
			if prefix != "" {
				p = prefix + "." + p
			}
			paths[k.Line] = p
			rec(v, p)
		}
	}
	rec(&root, "")
	msg := err.Error()
	for line, p := range paths {
		tag := fmt.Sprintf("line %d: ", line)
		msg = strings.ReplaceAll(msg, tag, "key "+p+": ")
	}
	return errors.New(msg)
}

// cleanYAMLError turns yaml.v3's "field x not found in type config.Config"
// into a line that names the key.
func cleanYAMLError(err error) error {
	var te *yaml.TypeError
	if !errors.As(err, &te) {
		return err
	}
	msgs := make([]string, 0, len(te.Errors))
	for _, m := range te.Errors {
		if i := strings.Index(m, "field "); i >= 0 && strings.Contains(m, "not found in type") {
			name := strings.TrimPrefix(m[i:], "field ")
			name = name[:strings.Index(name, " not found")]
			m = m[:i] + "unknown key " + strconv.Quote(name)
		}
		msgs = append(msgs, m)
	}
	return errors.New(strings.Join(msgs, "; "))
}

func (c *Config) resolveSecrets() error {
	pw, from := c.dbPassword, "CARACAL_DATABASE_PASSWORD"
	c.dbPassword = ""
	if c.Database.PasswordFile != "" { // the file wins over the environment
		b, err := os.ReadFile(c.Database.PasswordFile)
		if err != nil {
			return fmt.Errorf("database.passwordFile: %w", err)
		}
		pw, from = strings.TrimSpace(string(b)), "database.passwordFile"
	}
	if pw == "" {
		return nil
	}
	// The password goes into both URLs: the direct one (LISTEN, migrations
	// behind PgBouncer) reaches the same database as the same user.
	u, err := withPassword(c.Database.URL, pw)
	if err != nil {
		return fmt.Errorf("%s: database.url: %w", from, err)
	}
	c.Database.URL = u
	if c.Database.DirectURL != "" {
		if c.Database.DirectURL, err = withPassword(c.Database.DirectURL, pw); err != nil {
			return fmt.Errorf("%s: database.directURL: %w", from, err)
		}
	}
	return nil
}
