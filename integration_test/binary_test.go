// Package integration_test runs the module's binaries and whole stacks of hosts
// on 127.0.0.1 with real faults: processes killed and restarted, networks cut.
package integration_test

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"
)

var binary string // the resilient-dht binary, built once by TestMain

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "resilient-dht-bin-*")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binary = filepath.Join(dir, "resilient-dht")
	build := exec.Command("go", "build", "-o", binary, "../cmd/resilient-dht")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "building resilient-dht:", err)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	// VerifyTestMain calls os.Exit itself, so a deferred RemoveAll would never
	// run: goleak.Cleanup removes the binary's directory after the leak check.
	goleak.VerifyTestMain(m, goleak.Cleanup(func(code int) {
		os.RemoveAll(dir)
		os.Exit(code)
	}))
}

// proc is a running resilient-dht process whose output is captured.
type proc struct {
	cmd  *exec.Cmd
	mu   sync.Mutex
	out  bytes.Buffer
	done chan struct{}
	err  error
}

func start(t *testing.T, args ...string) *proc {
	t.Helper()
	p := &proc{cmd: exec.Command(binary, args...), done: make(chan struct{})}
	pr, pw := io.Pipe()
	p.cmd.Stdout, p.cmd.Stderr = pw, pw
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		s := bufio.NewScanner(pr)
		for s.Scan() {
			p.mu.Lock()
			p.out.Write(s.Bytes())
			p.out.WriteByte('\n')
			p.mu.Unlock()
		}
	}()
	go func() {
		p.err = p.cmd.Wait()
		pw.Close()
		close(p.done)
	}()
	t.Cleanup(func() { p.kill(t) })
	return p
}

func (p *proc) output() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.out.String()
}

func (p *proc) kill(t *testing.T) {
	select {
	case <-p.done:
	default:
		p.cmd.Process.Signal(syscall.SIGKILL)
		<-p.done
	}
}

// stop sends SIGTERM and waits for a graceful exit.
func (p *proc) stop(t *testing.T, within time.Duration) {
	t.Helper()
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
		if p.err != nil {
			t.Fatalf("exit after SIGTERM: %v\n%s", p.err, p.output())
		}
	case <-time.After(within):
		t.Fatalf("no exit %v after SIGTERM\n%s", within, p.output())
	}
}

// run runs the binary to completion and returns its exit code and output.
func run(t *testing.T, timeout time.Duration, args ...string) (int, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, binary, args...)
	out, err := cmd.CombinedOutput()
	if ctx.Err() != nil {
		t.Fatalf("%v did not finish within %v\n%s", args, timeout, out)
	}
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return code, string(out)
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func healthz(addr string) int {
	c := http.Client{Timeout: 2 * time.Second}
	resp, err := c.Get("http://" + addr + "/healthz")
	if err != nil {
		return 0
	}
	resp.Body.Close()
	return resp.StatusCode
}

// waitHealthz polls until every address answers want, or fails after timeout.
func waitHealthz(t *testing.T, timeout time.Duration, want int, procs []*proc, addrs ...string) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		ok := true
		for _, a := range addrs {
			if healthz(a) != want {
				ok = false
			}
		}
		if ok {
			return
		}
		if time.Now().After(deadline) {
			var b strings.Builder
			for i, a := range addrs {
				fmt.Fprintf(&b, "%s → %d\n", a, healthz(a))
				if i < len(procs) && procs[i] != nil {
					fmt.Fprintf(&b, "--- output of %s ---\n%s\n", a, procs[i].output())
				}
			}
			t.Fatalf("not all nodes answered /healthz %d within %v:\n%s", want, timeout, b.String())
		}
		time.Sleep(200 * time.Millisecond)
	}
}

var peerIDLine = regexp.MustCompile(`peer id (\S+)`)

func keygen(t *testing.T, path string) string {
	t.Helper()
	code, out := run(t, 30*time.Second, "keygen", "--out", path)
	m := peerIDLine.FindStringSubmatch(out)
	if code != 0 || m == nil {
		t.Fatalf("keygen: exit %d\n%s", code, out)
	}
	return m[1]
}

func TestDemoRecovers(t *testing.T) {
	code, out := run(t, 2*time.Minute, "demo", "--nodes", "10", "--duration", "8s")
	if code != 0 {
		t.Fatalf("demo exit %d\n%s", code, out)
	}
	for _, want := range []string{"PHASE", "startup", "outage (8s)", "recovery", "the network recovered", "network cut", "unhealthy"} {
		if !strings.Contains(out, want) {
			t.Errorf("demo output lacks %q\n%s", want, out)
		}
	}
}

type runNode struct {
	key, id, dir, http string
	port               int
	proc               *proc
}

func (n *runNode) args(peers []*runNode) []string {
	a := []string{"run", "--identity", n.key, "--data-dir", n.dir, "--listen", fmt.Sprintf("/ip4/127.0.0.1/tcp/%d", n.port),
		"--http", n.http, "--min-peers", "2", "--log-level", "warn"}
	for _, p := range peers {
		if p != n {
			a = append(a, "--bootstrap", fmt.Sprintf("/ip4/127.0.0.1/tcp/%d/p2p/%s", p.port, p.id))
		}
	}
	return a
}

// Three nodes bootstrap from each other and become healthy; one is killed with
// SIGKILL (the others drop below MinPeers) and restarted with the same key and
// port; all return to healthy. SIGTERM then shuts each down gracefully.
func TestThreeNodesSurviveABootstrapNodeKill(t *testing.T) {
	dir := t.TempDir()
	nodes := make([]*runNode, 3)
	for i := range nodes {
		n := &runNode{key: filepath.Join(dir, fmt.Sprint("key", i)), dir: filepath.Join(dir, fmt.Sprint("data", i)), port: freePort(t)}
		n.id = keygen(t, n.key)
		n.http = fmt.Sprintf("127.0.0.1:%d", freePort(t))
		nodes[i] = n
	}
	var addrs []string
	var procs []*proc
	for _, n := range nodes {
		n.proc = start(t, n.args(nodes)...)
		addrs, procs = append(addrs, n.http), append(procs, n.proc)
	}
	waitHealthz(t, 90*time.Second, http.StatusOK, procs, addrs...)

	nodes[0].proc.kill(t)
	others, otherProcs := addrs[1:], procs[1:]
	waitHealthz(t, 60*time.Second, http.StatusServiceUnavailable, otherProcs, others...)

	nodes[0].proc = start(t, nodes[0].args(nodes)...)
	procs[0] = nodes[0].proc
	waitHealthz(t, 90*time.Second, http.StatusOK, procs, addrs...)

	for _, n := range nodes {
		n.proc.stop(t, 10*time.Second)
	}
}

// Bad input: exit code 2, one line naming the problem, no stack trace, and no
// existing file changed.
func TestBadInput(t *testing.T) {
	dir := t.TempDir()
	key := filepath.Join(dir, "key")
	id := keygen(t, key)
	keyBefore, _ := os.ReadFile(key)
	openKey := filepath.Join(dir, "open-key")
	keygen(t, openKey)
	os.Chmod(openKey, 0o644)
	badConfig := filepath.Join(dir, "bad.json")
	os.WriteFile(badConfig, []byte(`{"min_peers": 3, "mystery": true}`), 0o600)
	badRetry := filepath.Join(dir, "retry.json")
	os.WriteFile(badRetry, []byte(`{"retry": {"dht_peer": {"backoff_multiplier": 0.5}}}`), 0o600)
	notJSON := filepath.Join(dir, "notjson.json")
	os.WriteFile(notJSON, []byte("min_peers = 3"), 0o600)
	fileAsDir := filepath.Join(dir, "plainfile")
	os.WriteFile(fileAsDir, []byte("x"), 0o600)
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	busyPort := busy.Addr().(*net.TCPAddr).Port

	base := []string{"--identity", key, "--data-dir", filepath.Join(dir, "data"), "--http", "", "--listen", "/ip4/127.0.0.1/tcp/0",
		"--bootstrap", fmt.Sprintf("/ip4/127.0.0.1/tcp/1/p2p/%s", id)}
	runArgs := func(extra ...string) []string { return append(append([]string{"run"}, base...), extra...) }
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"no command", nil, "usage"},
		{"unknown command", []string{"serve"}, `unknown command "serve"`},
		{"unknown flag", []string{"run", "--colour", "red"}, "flag provided but not defined: -colour"},
		{"malformed listen", runArgs("--listen", "/ip4/999.1.1.1/tcp/1"), `--listen "/ip4/999.1.1.1/tcp/1"`},
		{"bootstrap without p2p", runArgs("--bootstrap", "/ip4/127.0.0.1/tcp/4001"), "no /p2p peer id"},
		{"port in use", runArgs("--listen", fmt.Sprintf("/ip4/127.0.0.1/tcp/%d", busyPort)), "--listen"},
		{"http port in use", runArgs("--http", busy.Addr().String()), "--http " + busy.Addr().String()},
		{"missing config", runArgs("--config", filepath.Join(dir, "nope.json")), "no such file"},
		{"config unknown field", runArgs("--config", badConfig), `unknown field "mystery"`},
		{"config not json", runArgs("--config", notJSON), notJSON},
		{"invalid retry values", runArgs("--config", badRetry), "retry.dht_peer"},
		{"bad min peers", runArgs("--min-peers", "0"), "--min-peers 0"},
		{"bad mode", runArgs("--mode", "relay"), `--mode "relay"`},
		{"bad dht", runArgs("--dht", "both"), `--dht "both"`},
		{"insecure key file", runArgs("--identity", openKey), "chmod 600"},
		{"unwritable data dir", runArgs("--data-dir", filepath.Join(fileAsDir, "sub")), "--data-dir"},
		{"keygen over existing key", []string{"keygen", "--out", key}, "refusing to overwrite"},
		{"keygen without out", []string{"keygen"}, "--out FILE is required"},
		{"status extra arg", []string{"status", "now"}, `unexpected argument "now"`},
		{"demo too few nodes", []string{"demo", "--nodes", "2"}, "--nodes 2"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, out := run(t, 30*time.Second, tt.args...)
			if code != 2 {
				t.Fatalf("exit %d, want 2\n%s", code, out)
			}
			if !strings.Contains(out, tt.want) {
				t.Fatalf("output does not mention %q:\n%s", tt.want, out)
			}
			if strings.Contains(out, "goroutine ") || strings.Contains(out, "panic") {
				t.Fatalf("stack trace in output:\n%s", out)
			}
			if tt.args != nil && strings.Count(strings.TrimSpace(out), "\n") > 0 {
				t.Fatalf("more than one line:\n%s", out)
			}
		})
	}
	if after, _ := os.ReadFile(key); !bytes.Equal(after, keyBefore) {
		t.Fatal("the existing key file was changed")
	}
}
