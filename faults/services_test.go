package faults

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// waitPort waits (bounded) until a TCP port accepts connections.
func waitPort(t *testing.T, port int, within time.Duration) {
	t.Helper()
	for deadline := time.Now().Add(within); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		if c, err := net.DialTimeout("tcp", "127.0.0.1:"+strconv.Itoa(port), time.Second); err == nil {
			c.Close()
			return
		}
	}
	t.Fatalf("port %d did not open within %v", port, within)
}

// proc is a private service process.
type proc struct {
	t    *testing.T
	name string
	argv []string
	env  []string // added to the test's environment
	uid  *syscall.Credential
	log  string
	cmd  *exec.Cmd
}

func (p *proc) start() {
	p.t.Helper()
	f, err := os.OpenFile(p.log, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		p.t.Fatal(err)
	}
	cmd := exec.Command(p.argv[0], p.argv[1:]...)
	cmd.Stdout, cmd.Stderr = f, f
	if len(p.env) > 0 {
		cmd.Env = append(os.Environ(), p.env...)
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Credential: p.uid}
	if err := cmd.Start(); err != nil {
		p.t.Fatalf("cannot start %s: %v", p.name, err)
	}
	f.Close()
	p.cmd = cmd
}

// signal sends sig and waits (bounded) for the process to exit.
func (p *proc) signal(sig syscall.Signal) {
	if p.cmd == nil {
		return
	}
	p.cmd.Process.Signal(sig) //nolint:errcheck
	done := make(chan struct{})
	go func() { p.cmd.Wait(); close(done) }() //nolint:errcheck
	select {
	case <-done:
	case <-time.After(60 * time.Second):
		p.cmd.Process.Kill() //nolint:errcheck
		<-done
	}
	p.cmd = nil
}

func (p *proc) kill9() { p.signal(syscall.SIGKILL) }

// kafka is a private single-node KRaft broker.
type kafka struct {
	proc
	port int
}

func kafkaHome(t *testing.T) string {
	home, _ := os.UserHomeDir()
	v, err := os.ReadFile("/tmp/caracal-services/kafka.version")
	version := "4.1.1"
	if err == nil {
		version = string(trimNL(v))
	}
	dir := filepath.Join(home, ".cache/caracal", "kafka-"+version)
	if _, err := os.Stat(filepath.Join(dir, "libs")); err != nil {
		t.Fatalf("no Kafka jars in %s (run scripts/services.sh up once): %v", dir, err)
	}
	return dir
}

func trimNL(b []byte) []byte {
	for len(b) > 0 && (b[len(b)-1] == '\n' || b[len(b)-1] == ' ') {
		b = b[:len(b)-1]
	}
	return b
}

func startKafka(t *testing.T) *kafka {
	dir := t.TempDir()
	port, cport := freePort(t), freePort(t)
	props := filepath.Join(dir, "server.properties")
	conf := fmt.Sprintf(`process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:%[2]d
listeners=PLAINTEXT://127.0.0.1:%[1]d,CONTROLLER://127.0.0.1:%[2]d
advertised.listeners=PLAINTEXT://127.0.0.1:%[1]d
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
log.dirs=%[3]s/data
num.partitions=3
auto.create.topics.enable=false
offsets.topic.replication.factor=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0
`, port, cport, dir)
	if err := os.WriteFile(props, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	home := kafkaHome(t)
	java := []string{"java", "-Xms128m", "-Xmx512m", "-Djava.awt.headless=true"}
	if _, err := os.Stat("/tmp/caracal-services/kafka/log4j2.properties"); err == nil {
		java = append(java, "-Dlog4j2.configurationFile=/tmp/caracal-services/kafka/log4j2.properties")
	}
	java = append(java, "-Dkafka.logs.dir="+dir, "-cp", home+"/libs/*")
	// A cluster id starting with '-' (1 in 64 random ids) is read by the
	// storage tool as an option and the format fails: draw until it is not.
	var clusterID string
	for clusterID == "" || clusterID[0] == '-' {
		var id [16]byte
		rand.Read(id[:]) //nolint:errcheck
		clusterID = base64.RawURLEncoding.EncodeToString(id[:])
	}
	format := exec.Command(java[0], append(java[1:], "kafka.tools.StorageTool", "format", "-t", clusterID, "-c", props)...)
	if out, err := format.CombinedOutput(); err != nil {
		t.Fatalf("cannot format the private Kafka: %v\n%s", err, out)
	}
	k := &kafka{proc: proc{t: t, name: "kafka", argv: append(java, "kafka.Kafka", props), log: filepath.Join(dir, "kafka.out")}, port: port}
	k.up()
	t.Cleanup(k.kill9)
	return k
}

func (k *kafka) addr() string { return "127.0.0.1:" + strconv.Itoa(k.port) }

// up starts the broker and waits until it answers metadata requests.
func (k *kafka) up() {
	k.start()
	waitPort(k.t, k.port, 90*time.Second)
	cl, err := kgo.NewClient(kgo.SeedBrokers(k.addr()))
	if err != nil {
		k.t.Fatal(err)
	}
	defer cl.Close()
	for deadline := time.Now().Add(60 * time.Second); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		_, err = kadm.NewClient(cl).BrokerMetadata(ctx)
		cancel()
		if err == nil {
			return
		}
	}
	k.t.Fatalf("the private Kafka does not answer: %v", err)
}

// redis is a private Redis without persistence: a restart comes back empty.
type redis struct {
	proc
	port int
}

func startRedis(t *testing.T) *redis {
	port := freePort(t)
	r := &redis{proc: proc{t: t, name: "redis", log: filepath.Join(t.TempDir(), "redis.log"),
		argv: []string{"redis-server", "--port", strconv.Itoa(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"}}, port: port}
	r.up()
	t.Cleanup(r.kill9)
	return r
}

func (r *redis) up()          { r.start(); waitPort(r.t, r.port, 30*time.Second) }
func (r *redis) addr() string { return "127.0.0.1:" + strconv.Itoa(r.port) }

// postgres is a private PostgreSQL 15 cluster run as the postgres user.
type postgres struct {
	proc
	port int
	dir  string
}

func startPostgres(t *testing.T) *postgres {
	bin := "/usr/lib/postgresql/15/bin/"
	dir, err := os.MkdirTemp("", "caracal-faults-pg-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	cred := postgresCred(t)
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	data := filepath.Join(dir, "data")
	if err := os.Mkdir(data, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(data, int(cred.Uid), int(cred.Gid)); err != nil {
		t.Fatal(err)
	}
	initdb := exec.Command(bin+"initdb", "-D", data, "-U", "caracal", "--auth=trust", "-E", "UTF8")
	initdb.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
	if out, err := initdb.CombinedOutput(); err != nil {
		t.Fatalf("initdb: %v\n%s", err, out)
	}
	port := freePort(t)
	p := &postgres{proc: proc{t: t, name: "postgres", uid: cred, log: filepath.Join(dir, "pg.log"),
		argv: []string{bin + "postgres", "-D", data, "-p", strconv.Itoa(port), "-k", data, "-c", "listen_addresses=127.0.0.1", "-c", "max_connections=100"}},
		port: port, dir: dir}
	if f, err := os.Create(p.log); err == nil {
		f.Close()
		os.Chown(p.log, int(cred.Uid), int(cred.Gid)) //nolint:errcheck
	}
	p.up()
	t.Cleanup(func() { p.signal(syscall.SIGINT) })
	return p
}

func (p *postgres) up() { p.start(); waitPort(p.t, p.port, 60*time.Second) }

// stop is a fast shutdown (pg_ctl -m fast).
func (p *postgres) stop() { p.signal(syscall.SIGINT) }

func (p *postgres) url(db string) string {
	return fmt.Sprintf("postgres://caracal@127.0.0.1:%d/%s?sslmode=disable", p.port, db)
}

func postgresCred(t *testing.T) *syscall.Credential {
	out, err := exec.Command("id", "-u", "postgres").Output()
	if err != nil {
		t.Fatalf("no postgres user: %v", err)
	}
	uid, _ := strconv.Atoi(string(trimNL(out)))
	out, err = exec.Command("id", "-g", "postgres").Output()
	if err != nil {
		t.Fatal(err)
	}
	gid, _ := strconv.Atoi(string(trimNL(out)))
	return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}
}
