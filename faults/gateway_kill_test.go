package faults

import (
	"net"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"
)

var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
	buildOut  []byte
)

// caracalBinary builds cmd/caracal once per test run.
func caracalBinary(t *testing.T) string {
	buildOnce.Do(func() {
		dir, err := filepath.Abs(filepath.Join("..", "bin"))
		if err != nil {
			buildErr = err
			return
		}
		binPath = filepath.Join(dir, "caracal-faults")
		cmd := exec.Command("go", "build", "-o", binPath, "../cmd/caracal")
		buildOut, buildErr = cmd.CombinedOutput()
	})
	if buildErr != nil {
		t.Fatalf("cannot build caracal: %v\n%s", buildErr, buildOut)
	}
	return binPath
}

// gatewayProc runs `caracal gateway` against the stack's services with its
// spool in spoolDir.
func (s *stack) gatewayProc(spoolDir string) *proc {
	port, admin := freePort(s.t), freePort(s.t)
	s.t.Setenv("CARACAL_GATEWAY_SPOOL_DIR", spoolDir)
	s.gwAddr = "127.0.0.1:" + strconv.Itoa(port)
	p := &proc{t: s.t, name: "gateway", log: filepath.Join(spoolDir, "..", "gateway.log"), argv: []string{caracalBinary(s.t), "gateway",
		"--set", "database.url=" + s.cfg.Database.URL, "--set", "kafka.brokers=" + s.k.addr(), "--set", "redis.addrs=" + s.r.addr(),
		"--set", "gateway.listen=" + s.gwAddr, "--set", "gateway.adminListen=127.0.0.1:" + strconv.Itoa(admin),
		"--set", "gateway.plaintext=true", "--set", "gateway.leaseSizeMicros=" + strconv.Itoa(leaseSize)}}
	p.start()
	waitPort(s.t, port, 60*time.Second)
	s.t.Cleanup(func() { p.signal(syscall.SIGTERM) })
	return p
}

// killGatewayUnderLoad kills the gateway -9 mid-load and starts it again on
// the same spool.
func killGatewayUnderLoad(t *testing.T, strict bool) {
	s := newStackWith(t, stackOptions{strict: strict, externalGateway: true, latency: 300 * time.Millisecond})
	spool := filepath.Join(t.TempDir(), "spool")
	gw := s.gatewayProc(spool)
	// The killed gateway's lease is reclaimed at its deadline; what it
	// charged and delivers from its spool after that is at most that lease
	// (docs/budget.md, overshoot case 1).
	s.overshoot = leaseSize
	sum := s.load(warm+after, func() {
		time.Sleep(warm)
		gw.kill9()
		gw.start()
		waitPort(t, mustPort(t, s.gwAddr), 60*time.Second)
	})
	m := defaultKill
	if strict {
		m = strictKill
	}
	s.check(sum, m)
}

func mustPort(t *testing.T, addr string) int {
	_, p, _ := net.SplitHostPort(addr)
	n, err := strconv.Atoi(p)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// TestGatewayKill9Strict: a strict-mode gateway killed -9 under load; on
// restart its intents without completion are charged as incomplete.
func TestGatewayKill9Strict(t *testing.T) {
	needFaults(t)
	killGatewayUnderLoad(t, true)
}

// TestGatewayKill9Default: the same in default mode; the events lost with
// the process are counted and printed (the documented bound).
func TestGatewayKill9Default(t *testing.T) {
	needFaults(t)
	killGatewayUnderLoad(t, false)
}
