package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestExampleConfigLoads(t *testing.T) {
	dir := t.TempDir()
	pw := filepath.Join(dir, "pw")
	if err := os.WriteFile(pw, []byte("s3cret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := Load("../../deploy/config/caracal.example.yaml", nil,
		[]string{"database.passwordFile=" + pw})
	if err != nil {
		t.Fatal(err)
	}
	if c.DBPoolSize != 20 || c.DBMaxOverflow != 10 || c.DBPoolTimeout.D() != 30*time.Second ||
		c.MaxConcurrentRequests != 1000 || c.RequestTimeout.D() != 30*time.Second ||
		c.PolicyCacheTTL.D() != time.Minute || c.PolicyCacheMaxSize != 50000 {
		t.Fatalf("guide tuning values not read: %+v", c)
	}
	p := c.Kafka.Producer
	if p.BatchSize != 32768 || p.LingerMs != 10 || p.CompressionType != "snappy" ||
		p.BufferMemory != 67108864 || p.Acks != "all" || !p.EnableIdempotence {
		t.Fatalf("producer settings not read: %+v", p)
	}
	k := c.Kafka.Consumer
	if k.FetchMinBytes != 1024 || k.FetchMaxWaitMs != 500 || k.MaxPollRecords != 500 ||
		k.EnableAutoCommit || k.IsolationLevel != "read_committed" {
		t.Fatalf("consumer settings not read: %+v", k)
	}
	if c.Ledger.BatchMaxRecords != 5000 || c.Ledger.CheckpointEvery != 10000 || c.Ledger.CheckpointInterval.D() != 2*time.Second {
		t.Fatalf("ledger keys not read: %+v", c.Ledger)
	}
	if c.Aggregator.SpendGaugeMaxAgents != 500 || c.Aggregator.SpendGaugeInterval.D() != 15*time.Second {
		t.Fatalf("aggregator keys not read: %+v", c.Aggregator)
	}
	if !strings.Contains(c.Database.URL, ":s3cret@") {
		t.Fatalf("password file not applied: %s", c.Database.URL)
	}
	if r := c.Redacted(); strings.Contains(r.Database.URL, "s3cret") {
		t.Fatalf("redacted config leaks the password: %s", r.Database.URL)
	}
}

func TestPrecedence(t *testing.T) {
	dir := t.TempDir()
	f := filepath.Join(dir, "c.yaml")
	if err := os.WriteFile(f, []byte("maxConcurrentRequests: 10\nrequestTimeout: 5\nkafka:\n  producer:\n    linger.ms: 3\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	env := []string{"CARACAL_MAX_CONCURRENT_REQUESTS=20", "CARACAL_KAFKA_PRODUCER_LINGER_MS=4", "CARACAL_TEST_PG_DSN=x", "CARACAL_KAFKA_BROKERS=a:1, b:2"}
	c, err := Load(f, env, []string{"maxConcurrentRequests=30"})
	if err != nil {
		t.Fatal(err)
	}
	if c.MaxConcurrentRequests != 30 || c.RequestTimeout.D() != 5*time.Second || c.Kafka.Producer.LingerMs != 4 {
		t.Fatalf("precedence wrong: %d %v %d", c.MaxConcurrentRequests, c.RequestTimeout.D(), c.Kafka.Producer.LingerMs)
	}
	if len(c.Kafka.Brokers) != 2 || c.Kafka.Brokers[1] != "b:2" {
		t.Fatalf("broker list from env: %v", c.Kafka.Brokers)
	}
}

func TestBadConfigNamesTheKey(t *testing.T) {
	cases := []struct {
		name, file, env, set, want string
	}{
		{name: "unknown top-level key", file: "dbPoolSiz: 3\n", want: `unknown key "dbPoolSiz"`},
		{name: "unknown nested key", file: "kafka:\n  producer:\n    linger: 3\n", want: `unknown key "linger"`},
		{name: "bad type", file: "dbPoolSize: many\n", want: "dbPoolSize"},
		{name: "bad duration", file: "requestTimeout: soon\n", want: "invalid duration"},
		{name: "out of range", file: "dbPoolSize: 0\n", want: "config key dbPoolSize"},
		{name: "bad compression", file: "kafka:\n  producer:\n    compression.type: brotli\n", want: "kafka.producer.compression.type"},
		{name: "idempotence needs acks=all", file: "kafka:\n  producer:\n    acks: \"1\"\n", want: "kafka.producer.enable.idempotence"},
		{name: "auto commit refused", file: "kafka:\n  consumer:\n    enable.auto.commit: true\n", want: "kafka.consumer.enable.auto.commit"},
		{name: "bad env value", env: "CARACAL_POLICY_CACHE_MAX_SIZE=lots", want: "CARACAL_POLICY_CACHE_MAX_SIZE"},
		{name: "unknown --set key", set: "gateway.lisen=:1", want: `unknown key "gateway.lisen"`},
		{name: "set without value", set: "gateway.listen", want: "want key=value"},
		{name: "bad listen", set: "gateway.listen=8443", want: "config key gateway.listen"},
		{name: "bad cidr", set: "gateway.trustedProxies=10.0.0.0/99", want: "gateway.trustedProxies"},
		{name: "ledger batch zero", set: "ledger.batchMaxRecords=0", want: "config key ledger.batchMaxRecords"},
		{name: "ledger batch env", env: "CARACAL_LEDGER_BATCH_MAX_RECORDS=-5", want: "config key ledger.batchMaxRecords"},
		{name: "checkpoint every zero", file: "ledger:\n  checkpointEvery: 0\n", want: "config key ledger.checkpointEvery"},
		{name: "checkpoint every not a number", file: "ledger:\n  checkpointEvery: often\n", want: "key ledger.checkpointEvery"},
		{name: "checkpoint every env", env: "CARACAL_LEDGER_CHECKPOINT_EVERY=-1", want: "config key ledger.checkpointEvery"},
		{name: "checkpoint interval too short", set: "ledger.checkpointInterval=1ms", want: "config key ledger.checkpointInterval"},
		{name: "checkpoint interval bad", env: "CARACAL_LEDGER_CHECKPOINT_INTERVAL=soon", want: "CARACAL_LEDGER_CHECKPOINT_INTERVAL"},
		{name: "spend gauge agents negative", set: "aggregator.spendGaugeMaxAgents=-1", want: "config key aggregator.spendGaugeMaxAgents"},
		{name: "spend gauge agents too many", env: "CARACAL_AGGREGATOR_SPEND_GAUGE_MAX_AGENTS=20000", want: "config key aggregator.spendGaugeMaxAgents"},
		{name: "spend gauge interval", file: "aggregator:\n  spendGaugeInterval: 100ms\n", want: "config key aggregator.spendGaugeInterval"},
		{name: "open pprof", file: "gateway:\n  adminListen: 0.0.0.0:9090\n  enablePprof: true\n", want: "config key gateway.enablePprof"},
		{name: "pprof on all interfaces", file: "gateway:\n  adminListen: :9090\n  enablePprof: true\n", want: "needs gateway.adminToken"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			path := ""
			if tc.file != "" {
				path = filepath.Join(t.TempDir(), "c.yaml")
				if err := os.WriteFile(path, []byte(tc.file), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			var env, set []string
			if tc.env != "" {
				env = []string{tc.env}
			}
			if tc.set != "" {
				set = []string{tc.set}
			}
			_, err := Load(path, env, set)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want an error containing %q", err, tc.want)
			}
			if strings.Contains(err.Error(), "\n") {
				t.Fatalf("error is not one line: %q", err)
			}
		})
	}
}

// TestLedgerAndAggregatorKeys: the checkpoint and spend-gauge keys have
// their defaults and are read from the file, the environment and --set.
func TestLedgerAndAggregatorKeys(t *testing.T) {
	c, err := Load("", nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if c.Ledger.CheckpointEvery != 10000 || c.Ledger.CheckpointInterval.D() != 2*time.Second ||
		c.Aggregator.SpendGaugeMaxAgents != 500 || c.Aggregator.SpendGaugeInterval.D() != 15*time.Second {
		t.Fatalf("defaults: %+v %+v", c.Ledger, c.Aggregator)
	}
	f := filepath.Join(t.TempDir(), "c.yaml")
	if err := os.WriteFile(f, []byte("ledger:\n  checkpointEvery: 7\n  checkpointInterval: 250ms\naggregator:\n  spendGaugeMaxAgents: 0\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err = Load(f, []string{"CARACAL_AGGREGATOR_SPEND_GAUGE_INTERVAL=30", "CARACAL_LEDGER_CHECKPOINT_EVERY=9"}, []string{"ledger.checkpointInterval=5s"})
	if err != nil {
		t.Fatal(err)
	}
	if c.Ledger.CheckpointEvery != 9 || c.Ledger.CheckpointInterval.D() != 5*time.Second ||
		c.Aggregator.SpendGaugeMaxAgents != 0 || c.Aggregator.SpendGaugeInterval.D() != 30*time.Second {
		t.Fatalf("file/env/--set not applied: %+v %+v", c.Ledger, c.Aggregator)
	}
}

func TestEnvNames(t *testing.T) {
	for key, want := range map[string]string{
		"dbPoolSize":                     "CARACAL_DB_POOL_SIZE",
		"policyCacheTTL":                 "CARACAL_POLICY_CACHE_TTL",
		"kafka.producer.linger.ms":       "CARACAL_KAFKA_PRODUCER_LINGER_MS",
		"gateway.clientCAFile":           "CARACAL_GATEWAY_CLIENT_CA_FILE",
		"ledger.checkpointEvery":         "CARACAL_LEDGER_CHECKPOINT_EVERY",
		"aggregator.spendGaugeMaxAgents": "CARACAL_AGGREGATOR_SPEND_GAUGE_MAX_AGENTS",
	} {
		if got := EnvName(key); got != want {
			t.Errorf("EnvName(%s) = %s, want %s", key, got, want)
		}
	}
}

func TestDatabasePasswordAppliedLast(t *testing.T) {
	env := []string{"CARACAL_DATABASE_PASSWORD=pw1", "CARACAL_DATABASE_URL=postgres://app@db:5432/x"}
	c, err := Load("", env, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(c.Database.URL, "app:pw1@db") {
		t.Fatalf("password lost when the URL comes later: %s", c.Database.URL)
	}
	c, err = Load("", []string{"CARACAL_DATABASE_PASSWORD=pw2"}, []string{"database.url=postgres://u@h:5432/d"})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(c.Database.URL, "u:pw2@h") {
		t.Fatalf("password lost with --set database.url: %s", c.Database.URL)
	}
}

// TestDatabasePasswordInBothURLs: the password (environment or file, the
// file winning) goes into database.directURL as well, which LISTEN and the
// migrations behind PgBouncer use.
func TestDatabasePasswordInBothURLs(t *testing.T) {
	set := []string{"database.url=postgres://app@pgbouncer:6432/x", "database.pgbouncer=true", "database.directURL=postgres://app@db:5432/x"}
	c, err := Load("", []string{"CARACAL_DATABASE_PASSWORD=pw1"}, set)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(c.Database.URL, "app:pw1@pgbouncer") || !strings.Contains(c.Database.DirectURL, "app:pw1@db") {
		t.Fatalf("url %s, directURL %s: want the password in both", c.Database.URL, c.Database.DirectURL)
	}
	file := filepath.Join(t.TempDir(), "pw")
	if err := os.WriteFile(file, []byte("pw2\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err = Load("", []string{"CARACAL_DATABASE_PASSWORD=pw1"}, append(set, "database.passwordFile="+file))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(c.Database.URL, "app:pw2@pgbouncer") || !strings.Contains(c.Database.DirectURL, "app:pw2@db") {
		t.Fatalf("url %s, directURL %s: want the file's password in both", c.Database.URL, c.Database.DirectURL)
	}
	if _, err := Load("", []string{"CARACAL_DATABASE_PASSWORD=pw1"}, []string{"database.directURL=host=db user=app"}); err == nil ||
		!strings.Contains(err.Error(), "database.directURL") {
		t.Fatalf("a keyword/value directURL with a password to add: %v, want an error naming database.directURL", err)
	}
}

// TestPprofAllowedWhenGuarded: pprof is fine on loopback, or anywhere with
// an admin token.
func TestPprofAllowedWhenGuarded(t *testing.T) {
	for _, set := range [][]string{
		{"gateway.enablePprof=true"}, // default adminListen is 127.0.0.1:9090
		{"gateway.enablePprof=true", "gateway.adminListen=[::1]:9090"},
		{"gateway.enablePprof=true", "gateway.adminListen=localhost:9090"},
		{"gateway.enablePprof=true", "gateway.adminListen=0.0.0.0:9090", "gateway.adminToken=s3cret"},
		{"gateway.adminListen=0.0.0.0:9090"},
	} {
		if _, err := Load("", nil, set); err != nil {
			t.Errorf("%v: %v", set, err)
		}
	}
}
