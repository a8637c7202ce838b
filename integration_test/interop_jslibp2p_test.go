package integration_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sync"
	"syscall"
	"testing"
	"time"
)

// The js-libp2p interop tests run resilient-dht beside real js-libp2p peers
// (integration_test/jspeer: js-libp2p 3 with @libp2p/kad-dht 16 serving
// /ipfs/kad/1.0.0 and /ipfs/lan/kad/1.0.0, loopback addresses kept, TCP +
// noise + yamux), installed with `npm ci` from the committed lock file. They
// skip only where `node` is missing.

const jsPeerDir = "jspeer"

var (
	npmOnce sync.Once
	npmErr  error
)

// needJSPeer skips the test without node and installs the js peer's
// packages (once per test binary) with npm ci.
func needJSPeer(t *testing.T) {
	t.Helper()
	if _, err := exec.LookPath("node"); err != nil {
		t.Skip("node not found in PATH: the js-libp2p interop tests need Node.js >= 20 and npm")
	}
	npmOnce.Do(func() {
		if upToDate(filepath.Join(jsPeerDir, "node_modules", ".package-lock.json"), filepath.Join(jsPeerDir, "package-lock.json")) {
			return
		}
		cmd := exec.Command("npm", "ci", "--no-audit", "--no-fund", "--loglevel=error")
		cmd.Dir = jsPeerDir
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Run(); err != nil {
			npmErr = fmt.Errorf("npm ci in %s: %v\n%s", jsPeerDir, err, out.String())
		}
	})
	if npmErr != nil {
		t.Fatal(npmErr)
	}
}

// upToDate reports whether npm's record of the installed tree is newer than
// the lock file.
func upToDate(installed, lock string) bool {
	a, err1 := os.Stat(installed)
	b, err2 := os.Stat(lock)
	return err1 == nil && err2 == nil && !a.ModTime().Before(b.ModTime())
}

// jsStatus is one status line of a js peer.
type jsStatus struct {
	ID          string   `json:"id"`
	Addrs       []string `json:"addrs"`
	LAN         []string `json:"lan"`
	Amino       []string `json:"amino"`
	Connections int      `json:"connections"`
}

// jsPeer is a js-libp2p peer process with a fixed key and port.
type jsPeer struct {
	name, key string
	port      int
	bootstrap []string

	mu     sync.Mutex
	status jsStatus
	log    bytes.Buffer // stderr
	cmd    *exec.Cmd
	done   chan struct{}
}

func newJSPeer(t *testing.T, name string, bootstrap ...string) *jsPeer {
	p := &jsPeer{name: name, key: filepath.Join(t.TempDir(), name+".key"), port: freePort(t), bootstrap: bootstrap}
	p.start(t)
	t.Cleanup(func() { p.kill() })
	return p
}

// start runs the peer and waits for its first status line.
func (p *jsPeer) start(t *testing.T) {
	t.Helper()
	args := []string{"peer.mjs", "--key", p.key, "--port", fmt.Sprint(p.port)}
	for _, b := range p.bootstrap {
		args = append(args, "--bootstrap", b)
	}
	cmd := exec.Command("node", args...)
	cmd.Dir = jsPeerDir
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	p.mu.Lock()
	p.status = jsStatus{}
	cmd.Stderr = &lockedWriter{mu: &p.mu, w: &p.log}
	p.mu.Unlock()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	p.mu.Lock()
	p.cmd, p.done = cmd, done
	p.mu.Unlock()
	go func() {
		s := bufio.NewScanner(stdout)
		s.Buffer(make([]byte, 64<<10), 1<<20)
		for s.Scan() {
			var st jsStatus
			if json.Unmarshal(s.Bytes(), &st) == nil {
				p.mu.Lock()
				p.status = st
				p.mu.Unlock()
			}
		}
		cmd.Wait()
		close(done)
	}()
	waitUntil(t, 20*time.Second, p.name+" to start", func() bool {
		select {
		case <-done:
			t.Fatalf("%s exited at start\n%s", p.name, p.logs())
		default:
		}
		return p.get().ID != ""
	}, p.logs)
}

func (p *jsPeer) get() jsStatus {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.status
}

func (p *jsPeer) logs() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return fmt.Sprintf("--- %s status %+v\n%s", p.name, p.status, p.log.String())
}

// addr is the peer's full multiaddr.
func (p *jsPeer) addr() string {
	return fmt.Sprintf("/ip4/127.0.0.1/tcp/%d/p2p/%s", p.port, p.get().ID)
}

// kill sends SIGKILL and waits for the process to end.
func (p *jsPeer) kill() {
	p.mu.Lock()
	cmd, done := p.cmd, p.done
	p.mu.Unlock()
	if cmd == nil {
		return
	}
	cmd.Process.Signal(syscall.SIGKILL)
	<-done
}

type lockedWriter struct {
	mu *sync.Mutex
	w  *bytes.Buffer
}

func (l *lockedWriter) Write(b []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.w.Len() > 1<<20 {
		return len(b), nil
	}
	return l.w.Write(b)
}

// waitUntil polls cond every 100 ms; on timeout it fails with what.
func waitUntil(t *testing.T, timeout time.Duration, what string, cond func() bool, dump ...func() string) time.Duration {
	t.Helper()
	start := time.Now()
	for !cond() {
		if time.Since(start) > timeout {
			var b bytes.Buffer
			for _, d := range dump {
				b.WriteString(d())
				b.WriteByte('\n')
			}
			t.Fatalf("timed out after %v waiting for %s\n%s", timeout, what, b.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
	return time.Since(start)
}

// goStatus is the part of resilient-dht's /status the tests read.
type goStatus struct {
	PeerID        string         `json:"peer_id"`
	Healthy       bool           `json:"healthy"`
	RoutingTables map[string]int `json:"routing_tables"`
}

func readStatus(addr string) goStatus {
	var st goStatus
	c := http.Client{Timeout: 2 * time.Second}
	resp, err := c.Get("http://" + addr + "/status")
	if err != nil {
		return st
	}
	defer resp.Body.Close()
	json.NewDecoder(resp.Body).Decode(&st)
	return st
}

// TestInteropJS runs resilient-dht (its defaults: --dht dual --mode auto) beside
// js-libp2p peers on 127.0.0.1:
//
//  1. it bootstraps from three js peers, knowing only the first (as do the
//     other two), and becomes healthy with all three in its LAN table: the
//     first js peer's answers carry the others' loopback addresses, and the
//     LAN DHT keeps them (loopback-addresses-on-lan-dht: auto);
//  2. all js peers are SIGKILLed: it becomes unhealthy; they restart with the
//     same keys and ports: it is healthy again;
//  3. two new js peers know only it: they find each other through it (each
//     in the other's LAN table).
func TestInteropJS(t *testing.T) {
	needJSPeer(t)
	js1 := newJSPeer(t, "js1")
	js2 := newJSPeer(t, "js2", js1.addr())
	js3 := newJSPeer(t, "js3", js1.addr())
	jsPeers := []*jsPeer{js1, js2, js3}
	dump := func() string {
		var b bytes.Buffer
		for _, p := range jsPeers {
			b.WriteString(p.logs())
		}
		return b.String()
	}

	dir := t.TempDir()
	httpAddr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	port := freePort(t)
	started := time.Now()
	ours := start(t, "run", "--identity", filepath.Join(dir, "key"), "--data-dir", filepath.Join(dir, "data"),
		"--listen", fmt.Sprintf("/ip4/127.0.0.1/tcp/%d", port), "--http", httpAddr,
		"--bootstrap", js1.addr(), "--min-peers", "3", "--log-level", "warn")
	oursOut := func() string { return "--- resilient-dht\n" + ours.output() + dump() }

	// 1. Bootstrap from js peers.
	waitUntil(t, 40*time.Second, "resilient-dht healthy with 3 js peers in its LAN table", func() bool {
		st := readStatus(httpAddr)
		return st.Healthy && st.RoutingTables["lan"] >= 3
	}, oursOut)
	first := time.Since(started)
	st := readStatus(httpAddr)
	t.Logf("1. healthy %.1fs after start, tables %v", first.Seconds(), st.RoutingTables)
	waitUntil(t, 20*time.Second, "js peers to have resilient-dht in their LAN tables", func() bool {
		for _, p := range jsPeers {
			if !slices.Contains(p.get().LAN, st.PeerID) {
				return false
			}
		}
		return true
	}, oursOut)

	// 2. SIGKILL every js peer, then restart them.
	for _, p := range jsPeers {
		p.kill()
	}
	killed := time.Now()
	waitUntil(t, 30*time.Second, "resilient-dht unhealthy", func() bool { return healthz(httpAddr) == http.StatusServiceUnavailable }, oursOut)
	down := time.Since(killed)
	time.Sleep(2 * time.Second) // an outage, not a blip
	for _, p := range jsPeers {
		p.start(t)
	}
	back := waitUntil(t, 40*time.Second, "resilient-dht healthy again after the js peers restarted", func() bool {
		st := readStatus(httpAddr)
		return st.Healthy && st.RoutingTables["lan"] >= 3
	}, oursOut)
	t.Logf("2. unhealthy %.1fs after the SIGKILL; healthy %.1fs after the restart (%.1fs after the kill)",
		down.Seconds(), back.Seconds(), time.Since(killed).Seconds())

	// 3. Two js peers that know only resilient-dht find each other.
	oursAddr := fmt.Sprintf("/ip4/127.0.0.1/tcp/%d/p2p/%s", port, st.PeerID)
	js4 := newJSPeer(t, "js4", oursAddr)
	js5 := newJSPeer(t, "js5", oursAddr)
	jsPeers = append(jsPeers, js4, js5)
	met := waitUntil(t, 30*time.Second, "js4 and js5 in each other's LAN tables", func() bool {
		return slices.Contains(js4.get().LAN, js5.get().ID) && slices.Contains(js5.get().LAN, js4.get().ID)
	}, oursOut)
	t.Logf("3. js4 and js5 in each other's LAN tables %.1fs after they started", met.Seconds())

	ours.stop(t, 10*time.Second)
}
