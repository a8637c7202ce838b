package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
)

// testPeerID is a valid peer id for address tests.
func testPeerID(t *testing.T) peer.ID {
	t.Helper()
	k, _, err := crypto.GenerateEd25519Key(nil)
	if err != nil {
		t.Fatal(err)
	}
	id, err := peer.IDFromPrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

func TestParseFlags(t *testing.T) {
	id := testPeerID(t)
	peerAddr := "/ip4/127.0.0.1/tcp/4001/p2p/" + id.String()

	o, err := parseFlags(nil)
	if err != nil {
		t.Fatalf("no flags: %v", err)
	}
	if len(o.listen) != 1 || o.listen[0].String() != defaultListen || o.partner != nil || o.rendezvous != "" {
		t.Fatalf("defaults: %+v", o)
	}
	if o.retry.InitialDelay != defaultRetryInitial || o.retry.MaxDelay != defaultRetryMax || o.retry.MaxAttempts != 0 || o.quitWait != defaultQuitWait {
		t.Fatalf("default retry/quit-wait: %+v %v", o.retry, o.quitWait)
	}

	o, err = parseFlags([]string{"--listen", "/ip4/0.0.0.0/tcp/4001", "--listen", "/ip6/::1/tcp/4002", "--peer", peerAddr,
		"--identity", "k.key", "--retry-initial", "200ms", "--retry-max", "2s", "--quit-wait", "0s"})
	if err != nil {
		t.Fatalf("full command line: %v", err)
	}
	if len(o.listen) != 2 || o.partner == nil || o.partner.ID != id || len(o.partner.Addrs) != 1 || o.partner.Addrs[0].String() != "/ip4/127.0.0.1/tcp/4001" ||
		o.identity != "k.key" || o.retry.InitialDelay != 200*time.Millisecond || o.retry.MaxDelay != 2*time.Second || o.quitWait != 0 {
		t.Fatalf("parsed: %+v", o)
	}
	if err := o.retry.Validate(); err != nil {
		t.Fatalf("retry profile: %v", err)
	}

	o, err = parseFlags([]string{"--rendezvous", "room", "--bootstrap", peerAddr})
	if err != nil || o.rendezvous != "room" || len(o.bootstrap) != 1 || o.bootstrap[0].ID != id {
		t.Fatalf("rendezvous: %+v, %v", o, err)
	}

	if o.allowNewPartner {
		t.Fatal("--allow-new-partner is on by default")
	}
	if o, err = parseFlags([]string{"--allow-new-partner"}); err != nil || !o.allowNewPartner {
		t.Fatalf("--allow-new-partner: %+v, %v", o, err)
	}

	if _, err := parseFlags([]string{"-h"}); !errors.Is(err, flag.ErrHelp) {
		t.Fatalf("-h: %v, want flag.ErrHelp", err)
	}
}

func TestParseFlagsErrors(t *testing.T) {
	id := testPeerID(t).String()
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--nope"}, "flag provided but not defined: -nope"},
		{[]string{"extra"}, `unexpected argument "extra"`},
		{[]string{"--listen", "127.0.0.1:4001"}, `--listen "127.0.0.1:4001": not a multiaddr`},
		{[]string{"--listen", "/ip4/127.0.0.1/udp/4001/quic-v1"}, "not a TCP address"},
		{[]string{"--listen", "/ip4/127.0.0.1/tcp/1/p2p/" + id}, "no /p2p part"},
		{[]string{"--peer", "nonsense"}, `--peer "nonsense": not a multiaddr`},
		{[]string{"--peer", id}, "a bare peer id cannot be dialled"},
		{[]string{"--peer", "/ip4/127.0.0.1/tcp/4001"}, "no /p2p/<peer id> at the end"},
		{[]string{"--peer", "/p2p/" + id}, "no address before /p2p"},
		{[]string{"--peer", "/ip4/127.0.0.1/udp/1/quic-v1/p2p/" + id}, "not a TCP address"},
		{[]string{"--rendezvous", "r"}, "--rendezvous needs at least one --bootstrap"},
		{[]string{"--bootstrap", "/ip4/127.0.0.1/tcp/1/p2p/" + id}, "--bootstrap is only used with --rendezvous"},
		{[]string{"--rendezvous", "r", "--bootstrap", "/ip4/127.0.0.1/tcp/1"}, "--bootstrap:"},
		{[]string{"--rendezvous", "r", "--bootstrap", "/ip4/127.0.0.1/tcp/1/p2p/" + id, "--peer", "/ip4/127.0.0.1/tcp/1/p2p/" + id}, "exclude each other"},
		{[]string{"--rendezvous", " r", "--bootstrap", "/ip4/127.0.0.1/tcp/1/p2p/" + id}, "leading or trailing spaces"},
		{[]string{"--retry-initial", "0s"}, "--retry-initial 0s: must be > 0"},
		{[]string{"--retry-initial", "soon"}, `invalid value "soon" for flag -retry-initial`},
		{[]string{"--retry-initial", "2s", "--retry-max", "1s"}, "--retry-max 1s: must be >= --retry-initial (2s)"},
		{[]string{"--quit-wait", "-1s"}, "--quit-wait -1s: must be >= 0"},
		{[]string{"--close-timeout", "0s"}, "--close-timeout 0s: must be > 0"},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			_, err := parseFlags(tc.args)
			var ue *usageError
			if !errors.As(err, &ue) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want a usage error containing %q", err, tc.want)
			}
			if strings.Contains(err.Error(), "\n") {
				t.Fatalf("error spans lines: %q", err)
			}
		})
	}
}

// TestRunBadCommandLine checks the exit status and the single line on stderr.
func TestRunBadCommandLine(t *testing.T) {
	for _, args := range [][]string{
		{"--peer", "/ip4/127.0.0.1/tcp/4001"},
		{"--listen", "not-an-address"},
		{"--bogus"},
	} {
		var stdout, stderr bytes.Buffer
		code := run(context.Background(), args, strings.NewReader(""), &stdout, &stderr)
		if code != 2 {
			t.Errorf("%v: exit %d, want 2", args, code)
		}
		lines := strings.Split(strings.TrimRight(stderr.String(), "\n"), "\n")
		if len(lines) != 1 || !strings.HasPrefix(lines[0], "chat: ") {
			t.Errorf("%v: stderr %q, want one line starting with \"chat: \"", args, stderr.String())
		}
		if stdout.Len() != 0 {
			t.Errorf("%v: stdout %q, want nothing", args, stdout.String())
		}
	}

	var stdout, stderr bytes.Buffer
	if code := run(context.Background(), []string{"--help"}, strings.NewReader(""), &stdout, &stderr); code != 0 || !strings.Contains(stdout.String(), "--peer") && !strings.Contains(stdout.String(), "-peer") {
		t.Errorf("--help: exit %d, stdout %q", code, stdout.String())
	}
}

func TestRunIdentityFile(t *testing.T) {
	dir := t.TempDir()

	// A key file others may read is refused with a clear message.
	loose := filepath.Join(dir, "loose.key")
	k, _, err := crypto.GenerateEd25519Key(nil)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := crypto.MarshalPrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(loose, raw, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(loose, 0o644); err != nil { // umask-proof
		t.Fatal(err)
	}
	var stdout, stderr bytes.Buffer
	code := run(context.Background(), []string{"--identity", loose}, strings.NewReader(""), &stdout, &stderr)
	if code != 1 || !strings.Contains(stderr.String(), "chmod 600 "+loose) || strings.Count(stderr.String(), "\n") != 1 {
		t.Fatalf("group/other-readable key: exit %d, stderr %q", code, stderr.String())
	}

	// A missing file is created with mode 0600 and reused on the next run.
	path := filepath.Join(dir, "new.key")
	key1, created, err := loadIdentity(path)
	if err != nil || !created {
		t.Fatalf("create: created=%v, %v", created, err)
	}
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("new key file: %v, %v; want mode 0600", fi.Mode(), err)
	}
	key2, created, err := loadIdentity(path)
	if err != nil || created || !key1.Equals(key2) {
		t.Fatalf("reload: created=%v, same=%v, %v", created, key1.Equals(key2), err)
	}

	// --peer with this peer's own id is a bad command line.
	id, err := peer.IDFromPrivateKey(key1)
	if err != nil {
		t.Fatal(err)
	}
	stdout.Reset()
	stderr.Reset()
	code = run(context.Background(), []string{"--identity", path, "--peer", "/ip4/127.0.0.1/tcp/9/p2p/" + id.String()}, strings.NewReader(""), &stdout, &stderr)
	if code != 2 || !strings.Contains(stderr.String(), "own id") {
		t.Fatalf("--peer self: exit %d, stderr %q", code, stderr.String())
	}
}
