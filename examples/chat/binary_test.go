package main

import (
	"bytes"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"testing"
	"time"
)

// buildBinary builds this command into a temporary directory.
func buildBinary(t *testing.T) string {
	t.Helper()
	goTool := filepath.Join(runtime.GOROOT(), "bin", "go")
	if _, err := os.Stat(goTool); err != nil {
		goTool = "go"
	}
	bin := filepath.Join(t.TempDir(), "chat")
	cmd := exec.Command(goTool, "build", "-o", bin, ".")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// proc is a running chat binary driven through stdin and stdout.
type proc struct {
	t      *testing.T
	name   string
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	stdout *syncWriter
	outBuf *bytes.Buffer
	stderr bytes.Buffer // read only after done
	done   chan struct{}
	err    error // Wait's result, after done
}

func startProc(t *testing.T, name, bin string, args ...string) *proc {
	t.Helper()
	p := &proc{t: t, name: name, outBuf: &bytes.Buffer{}, done: make(chan struct{})}
	p.stdout = &syncWriter{w: p.outBuf}
	p.cmd = exec.Command(bin, args...)
	p.cmd.Stdout = p.stdout
	p.cmd.Stderr = &p.stderr
	var err error
	if p.stdin, err = p.cmd.StdinPipe(); err != nil {
		t.Fatal(err)
	}
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	go func() {
		p.err = p.cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		select {
		case <-p.done:
		default:
			_ = p.cmd.Process.Kill()
			<-p.done
		}
		if t.Failed() {
			t.Logf("%s stdout:\n%s\n%s stderr:\n%s", p.name, p.output(), p.name, p.stderr.String())
		}
	})
	return p
}

func (p *proc) output() string {
	p.stdout.mu.Lock()
	defer p.stdout.mu.Unlock()
	return p.outBuf.String()
}

// waitFor polls the output until re matches from offset from on and returns
// the submatches.
func (p *proc) waitFor(re *regexp.Regexp) []string {
	p.t.Helper()
	deadline := time.Now().Add(waitTimeout)
	for {
		if m := re.FindStringSubmatch(p.output()); m != nil {
			return m
		}
		select {
		case <-p.done:
			if m := re.FindStringSubmatch(p.output()); m != nil {
				return m
			}
			p.t.Fatalf("%s exited (%v) before printing %q", p.name, p.err, re)
		default:
		}
		if time.Now().After(deadline) {
			p.t.Fatalf("%s: timed out waiting for output %q", p.name, re)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (p *proc) typeLine(line string) {
	p.t.Helper()
	if _, err := io.WriteString(p.stdin, line+"\n"); err != nil {
		p.t.Fatalf("%s: type %q: %v", p.name, line, err)
	}
}

// exitCode waits for the process to end and returns its exit status.
func (p *proc) exitCode() int {
	p.t.Helper()
	select {
	case <-p.done:
	case <-time.After(waitTimeout):
		p.t.Fatalf("%s did not exit", p.name)
	}
	var ee *exec.ExitError
	switch {
	case p.err == nil:
		return 0
	case errors.As(p.err, &ee):
		return ee.ExitCode()
	default:
		p.t.Fatalf("%s: %v", p.name, p.err)
		return -1
	}
}

// TestBinary builds the command and drives it through stdin and stdout.
func TestBinary(t *testing.T) {
	bin := buildBinary(t)
	t.Run("bad flag", func(t *testing.T) { testBinaryBadFlag(t, bin) })
	t.Run("chat and restart", func(t *testing.T) { testBinaryChat(t, bin) })
}

// testBinaryChat runs two chat processes on 127.0.0.1: they exchange lines
// both ways; the listening one quits and comes back with the same identity on
// the same port while the other shows its reconnect attempts and queues a
// line, which arrives after the restart; /quit and Ctrl-D exit with status 0.
func testBinaryChat(t *testing.T, bin string) {
	dir := t.TempDir()
	keyA := filepath.Join(dir, "a.key")
	fast := []string{"--retry-initial", "100ms", "--retry-max", "1s"}

	a := startProc(t, "a", bin, append([]string{"--listen", "/ip4/127.0.0.1/tcp/0", "--identity", keyA}, fast...)...)
	m := a.waitFor(regexp.MustCompile(`listening on (/ip4/127\.0\.0\.1/tcp/(\d+)/p2p/(\w+))\n`))
	addrA, portA, idA := m[1], m[2], m[3]
	if fi, err := os.Stat(keyA); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("identity file: %v, %v; want mode 0600", fi, err)
	}

	b := startProc(t, "b", bin, append([]string{"--peer", addrA}, fast...)...)
	idB := b.waitFor(regexp.MustCompile(`peer id (\w+) `))[1]
	b.waitFor(regexp.MustCompile(`connected to ` + regexp.QuoteMeta(idA[len(idA)-8:])))

	b.typeLine("hello from b")
	a.waitFor(regexp.MustCompile(`\[\d\d:\d\d:\d\d\] ` + regexp.QuoteMeta(idB[len(idB)-8:]) + `: hello from b\n`))
	a.typeLine("hello from a")
	b.waitFor(regexp.MustCompile(`\[\d\d:\d\d:\d\d\] ` + regexp.QuoteMeta(idA[len(idA)-8:]) + `: hello from a\n`))

	a.typeLine("/quit")
	if code := a.exitCode(); code != 0 {
		t.Fatalf("a after /quit: exit %d", code)
	}
	b.waitFor(regexp.MustCompile(`reconnecting \(attempt \d+, next in \d+\.\ds\)`))
	b.typeLine("sent while a was away")
	b.waitFor(regexp.MustCompile(`pending #2 .*: sent while a was away`))

	// a comes back on the same port with the same key (retry while the port is
	// still held by the old process's sockets).
	var a2 *proc
	for try := 0; ; try++ {
		a2 = startProc(t, "a2", bin, append([]string{"--listen", "/ip4/127.0.0.1/tcp/" + portA, "--identity", keyA}, fast...)...)
		select {
		case <-a2.done:
		case <-time.After(2 * time.Second):
		}
		select {
		case <-a2.done:
			if try < 20 && strings.Contains(a2.stderr.String(), "address already in use") {
				time.Sleep(250 * time.Millisecond)
				continue
			}
			t.Fatalf("a2 exited early: %v\n%s", a2.err, a2.stderr.String())
		default:
		}
		break
	}
	a2.waitFor(regexp.MustCompile(`peer id ` + idA + ` `))
	a2.waitFor(regexp.MustCompile(`: sent while a was away\n`))
	b.waitFor(regexp.MustCompile(`delivered #2`))
	b.waitFor(regexp.MustCompile(idA[len(idA)-8:] + ` restarted`))

	a2.typeLine("welcome back")
	b.waitFor(regexp.MustCompile(`: welcome back\n`))

	if err := b.stdin.Close(); err != nil { // Ctrl-D
		t.Fatal(err)
	}
	if code := b.exitCode(); code != 0 {
		t.Fatalf("b after Ctrl-D: exit %d", code)
	}
	a2.typeLine("/quit")
	if code := a2.exitCode(); code != 0 {
		t.Fatalf("a2 after /quit: exit %d", code)
	}
	if n := strings.Count(a2.output(), "sent while a was away"); n != 1 {
		t.Fatalf("a2 showed the queued line %d times, want once", n)
	}
	if strings.Contains(a.output(), "sent while a was away") {
		t.Fatal("the first run of a showed a line typed after it quit")
	}
}

// testBinaryBadFlag checks the real exit status of a bad command line.
func testBinaryBadFlag(t *testing.T, bin string) {
	p := startProc(t, "bad", bin, "--peer", "/ip4/127.0.0.1/tcp/1")
	if code := p.exitCode(); code != 2 {
		t.Fatalf("exit %d, want 2", code)
	}
	if got := p.stderr.String(); strings.Count(got, "\n") != 1 || !strings.HasPrefix(got, "chat: --peer") {
		t.Fatalf("stderr %q, want one line about --peer", got)
	}
}
