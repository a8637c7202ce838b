package main

import (
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/chiral-network/go-libp2p-resilience/resilience"
	"github.com/chiral-network/go-libp2p-resilience/resilientdht"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const testPeer = "/ip4/127.0.0.1/tcp/4001/p2p/12D3KooWPLT8wbskGrHesB6159qk1DvnbuyK2d9hARf14bAQEGHt"

func loadArgs(t *testing.T, args ...string) (config, error) {
	t.Helper()
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	var f runFlags
	f.define(fs)
	if err := fs.Parse(args); err != nil {
		t.Fatal(err)
	}
	return f.load(fs)
}

func TestConfigFileThenFlags(t *testing.T) {
	path := filepath.Join(t.TempDir(), "node.json")
	os.WriteFile(path, []byte(`{
		"listen": ["/ip4/127.0.0.1/tcp/5001"],
		"bootstrap": ["`+testPeer+`"],
		"min_peers": 7, "mode": "server", "dht": "lan", "http": "127.0.0.1:1",
		"retry": {"dht_bootstrap": {"max_attempts": 0, "initial_delay_ms": 250, "jitter": "full"}}
	}`), 0o600)
	c, err := loadArgs(t, "--config", path, "--min-peers", "3", "--http", "")
	if err != nil {
		t.Fatal(err)
	}
	if c.MinPeers != 3 || c.HTTP != "" {
		t.Errorf("flags did not win: min_peers %d http %q", c.MinPeers, c.HTTP)
	}
	if c.Mode != "server" || c.DHT != "lan" || len(c.listenAddrs) != 1 || c.defaultListen {
		t.Errorf("file values lost: %+v", c)
	}
	if len(c.bootstrapPeers) != 1 || c.bootstrapPeers[0].ID.String() != "12D3KooWPLT8wbskGrHesB6159qk1DvnbuyK2d9hARf14bAQEGHt" {
		t.Errorf("bootstrap peers %v", c.bootstrapPeers)
	}
	want := resilience.ForDHTBootstrap()
	want.MaxAttempts, want.InitialDelay, want.Jitter = 0, 250*time.Millisecond, resilience.JitterFull
	if c.bootstrapCfg != want {
		t.Errorf("bootstrap profile %+v, want %+v", c.bootstrapCfg, want)
	}
	if c.peerCfg != resilience.ForDHTPeer() {
		t.Errorf("peer profile changed without a retry.dht_peer section: %+v", c.peerCfg)
	}
}

func TestDefaults(t *testing.T) {
	c, err := loadArgs(t, "--identity", "/tmp/k", "--data-dir", "/tmp/d")
	if err != nil {
		t.Fatal(err)
	}
	if !c.defaultListen || len(c.listenAddrs) != 4 || c.MinPeers != 4 || c.DHT != "dual" || c.HTTP != "127.0.0.1:9464" {
		t.Errorf("defaults: %+v", c)
	}
	if len(c.bootstrapPeers) == 0 {
		t.Error("no default bootstrap peers")
	}
}

func TestConfigErrorsNameTheProblem(t *testing.T) {
	dir := t.TempDir()
	file := func(name, body string) string {
		p := filepath.Join(dir, name)
		os.WriteFile(p, []byte(body), 0o600)
		return p
	}
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"--config", file("trailing.json", `{} {}`)}, "trailing data"},
		{[]string{"--config", file("type.json", `{"min_peers": "four"}`)}, "min_peers"},
		{[]string{"--config", file("retry.json", `{"retry": {"dht_bootstrap": {"jitter_factor": 3}}}`)}, "retry.dht_bootstrap"},
		{[]string{"--bootstrap", testPeer, "--bootstrap-file", "x"}, "one or the other"},
		{[]string{"--bootstrap-file", filepath.Join(dir, "missing")}, "--bootstrap-file"},
		{[]string{"--http", "nonsense"}, `--http "nonsense"`},
		{[]string{"--log-level", "chatty"}, `--log-level "chatty"`},
		{[]string{"--min-peers", "5000"}, "--min-peers 5000"},
		{[]string{"--conns-low", "2"}, "--conns-low 2: must be at least --min-peers (4)"},
		{[]string{"--conns-low", "-1"}, "--conns-low -1"},
		{[]string{"--conns-low", "100", "--conns-high", "50"}, "--conns-low 100: must not be above --conns-high (50)"},
		{[]string{"--conns-high", "2000000"}, "--conns-high 2000000"},
		{[]string{"--config", file("conns.json", `{"conns_high": 10}`)}, "--conns-low 32: must not be above --conns-high (10)"},
		{[]string{"--listen", "tcp://x"}, `--listen "tcp://x"`},
	}
	for _, tt := range tests {
		_, err := loadArgs(t, tt.args...)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%v: error %v, want it to mention %q", tt.args, err, tt.want)
		}
	}
}

// Connection limits left unset follow the ones set: the defaults, raised to
// --min-peers and to --conns-low.
func TestConnLimitsFollow(t *testing.T) {
	for _, tt := range []struct {
		args      []string
		low, high int
	}{
		{nil, resilientdht.DefaultConnsLow, resilientdht.DefaultConnsHigh},
		{[]string{"--min-peers", "40"}, 40, resilientdht.DefaultConnsHigh},
		{[]string{"--conns-low", "200"}, 200, 200},
		{[]string{"--conns-high", "400", "--conns-low", "100"}, 100, 400},
		{[]string{"--min-peers", "500"}, 500, 500},
	} {
		args := append([]string{"--identity", "/tmp/k", "--data-dir", "/tmp/d", "--bootstrap", testPeer}, tt.args...)
		c, err := loadArgs(t, args...)
		if err != nil || c.ConnsLow != tt.low || c.ConnsHigh != tt.high {
			t.Errorf("%v: limits %d/%d, %v; want %d/%d", tt.args, c.ConnsLow, c.ConnsHigh, err, tt.low, tt.high)
		}
	}
}

// A config file without "listen" keeps the default list (and its tolerance of a
// missing IPv6); a flag replaces the file's bootstrap setting of either kind.
func TestConfigFileKeepsDefaultsAndFlagsReplaceBootstrap(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "node.json")
	os.WriteFile(path, []byte(`{"min_peers": 5, "bootstrap": ["`+testPeer+`"]}`), 0o600)
	list := filepath.Join(dir, "peers.txt")
	os.WriteFile(list, []byte(testPeer+"\n"), 0o600)
	c, err := loadArgs(t, "--config", path, "--bootstrap-file", list)
	if err != nil {
		t.Fatal(err)
	}
	if !c.defaultListen || len(c.listenAddrs) != 4 {
		t.Errorf("a config file without listen lost the default list: %+v", c.Listen)
	}
	if len(c.Bootstrap) != 0 || c.BootstrapFile != list || len(c.bootstrapPeers) != 1 {
		t.Errorf("--bootstrap-file did not replace the file's bootstrap list: %+v / %q", c.Bootstrap, c.BootstrapFile)
	}
	os.WriteFile(path, []byte(`{"bootstrap_file": "`+list+`"}`), 0o600)
	if c, err = loadArgs(t, "--config", path, "--bootstrap", testPeer); err != nil || c.BootstrapFile != "" {
		t.Errorf("--bootstrap did not replace the file's bootstrap_file: %v %q", err, c.BootstrapFile)
	}
	if _, err := loadArgs(t, "--bootstrap", testPeer, "--bootstrap-file", list); err == nil {
		t.Error("both flags on the command line accepted")
	}
}

// FuzzConfigFile: no config file content panics the loader; what it accepts
// passes validation.
func FuzzConfigFile(f *testing.F) {
	f.Add([]byte(`{"min_peers": 7, "mode": "server", "dht": "lan", "listen": ["/ip4/127.0.0.1/tcp/5001"]}`))
	f.Add([]byte(`{"retry": {"dht_peer": {"max_attempts": 0, "initial_delay_ms": 1}}}`))
	f.Add([]byte(`{"bootstrap": ["` + testPeer + `"], "http": ""}`))
	// issue 13: trailing data, duplicate keys, null, long values, deep nesting,
	// non-decimal numbers, oversized or repeated listen addresses
	for _, s := range []string{
		`{"min_peers": 2}}`,
		`{"min_peers": 2, "min_peers": 3}`,
		`{"retry": {"dht_peer": {"max_attempts": 1, "max_attempts": 2}}}`,
		`{"mode": null}`,
		`{"listen": ["/ip4/127.0.0.1/tcp/1", null]}`,
		`null`,
		``,
		`{"min_peers": 0x10}`,
		`{"min_peers": 16.0}`,
		`{"mode": "` + strings.Repeat("x", 5000) + `"}`,
		`{"listen": ["/ip4/127.0.0.1/tcp/0` + strings.Repeat("/ws", 400) + `"]}`,
		`{"listen": ["/ip4/127.0.0.1/tcp/4001", "/ip4/127.0.0.1/tcp/04001"]}`,
		strings.Repeat(`{"retry":`, 20) + `{}` + strings.Repeat(`}`, 20),
		`{"http": "127.0.0.1:http"}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		path := filepath.Join(t.TempDir(), "node.json")
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
		c, err := loadArgs(t, "--config", path, "--identity", "/tmp/k", "--data-dir", "/tmp/d", "--bootstrap", testPeer)
		if err != nil {
			return
		}
		if c.MinPeers < 1 || len(c.listenAddrs) == 0 || c.bootstrapCfg.Validate() != nil || c.peerCfg.Validate() != nil {
			t.Fatalf("accepted a bad config from %q: %+v", data, c)
		}
		if err := checkStrictJSON(data); err != nil {
			t.Fatalf("accepted %q that is not strict JSON: %v", data, err)
		}
	})
}

// TestHostileConfigInput: the issue 13 cases of --config, --bootstrap-file,
// numeric flags and addresses: each is refused at once with an error that
// names the field and stays short.
func TestHostileConfigInput(t *testing.T) {
	dir := t.TempDir()
	file := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	fifo := filepath.Join(dir, "fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	long := strings.Repeat("x", 2<<20)
	ws := "/ip4/127.0.0.1/tcp/0" + strings.Repeat("/ws", 33_000)
	id := "12D3KooWPLT8wbskGrHesB6159qk1DvnbuyK2d9hARf14bAQEGHt"
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"config /dev/zero", []string{"--config", "/dev/zero"}, "config file /dev/zero: not a regular file (a character device)"},
		{"config fifo", []string{"--config", fifo}, "not a regular file (a named pipe)"},
		{"config directory", []string{"--config", dir}, "not a regular file (a directory)"},
		{"config over 1 MiB", []string{"--config", file("big.json", `{"mode": "`+long+`"}`)}, "larger than the limit of 1 MiB"},
		{"config 1 MiB exactly but a long value", []string{"--config", file("long.json", `{"mode": "`+long[:1<<19]+`"}`)}, "--mode \"xxxx"},
		{"trailing bracket", []string{"--config", file("trailing.json", `{"min_peers": 2}}`)}, `trailing data after the JSON object at byte 16: "}"`},
		{"trailing object", []string{"--config", file("trailing2.json", `{} {}`)}, "trailing data"},
		{"duplicate key", []string{"--config", file("dup.json", `{"min_peers": 2, "min_peers": 3}`)}, "min_peers: given twice"},
		{"nested duplicate key", []string{"--config", file("dup2.json", `{"retry": {"dht_peer": {"max_attempts": 1, "max_attempts": 2}}}`)}, "retry.dht_peer.max_attempts: given twice"},
		{"null value", []string{"--config", file("null.json", `{"mode": null}`)}, "mode: null where a value is needed"},
		{"null in a list", []string{"--config", file("null2.json", `{"listen": ["/ip4/127.0.0.1/tcp/1", null]}`)}, "listen[1]: null"},
		{"null retry section", []string{"--config", file("null3.json", `{"retry": {"dht_peer": null}}`)}, "retry.dht_peer: null"},
		{"null config", []string{"--config", file("null4.json", `null`)}, "the config: null"},
		{"empty config", []string{"--config", file("empty.json", ``)}, "empty: want a JSON object"},
		{"deep nesting", []string{"--config", file("deep.json", strings.Repeat(`{"retry":`, 20)+"{}"+strings.Repeat("}", 20))}, "nested deeper than 8 levels"},
		{"long unknown key", []string{"--config", file("key.json", `{"`+long[:1<<19]+`": 1}`)}, "unknown field"},
		{"bootstrap file /dev/urandom", []string{"--bootstrap-file", "/dev/urandom"}, "--bootstrap-file: bootstrap: read address file /dev/urandom: not a regular file"},
		{"bootstrap file fifo", []string{"--bootstrap-file", fifo}, "a named pipe"},
		{"bootstrap file over 1 MiB", []string{"--bootstrap-file", file("peers.txt", strings.Repeat(testPeer+"\n", 20_000))}, "larger than the limit of 1 MiB"},
		{"min-peers hex", []string{"--min-peers", "0x10"}, `invalid value "0x10" for flag -min-peers: not a decimal integer`},
		{"min-peers octal", []string{"--min-peers", "0o20"}, "not a decimal integer"},
		{"min-peers binary", []string{"--min-peers", "0b10000"}, "not a decimal integer"},
		{"min-peers underscore", []string{"--min-peers", "1_6"}, "not a decimal integer"},
		{"min-peers huge", []string{"--min-peers", "99999999999999999999"}, "out of range"},
		{"listen 100 KB", []string{"--listen", ws}, "longer than 1024 bytes"},
		{"listen many components", []string{"--listen", "/ip4/127.0.0.1/tcp/0" + strings.Repeat("/ws", 20)}, "22 components, at most 16"},
		{"listen twice", []string{"--listen", "/ip4/127.0.0.1/tcp/4001", "--listen", "/ip4/127.0.0.1/tcp/4001"}, `--listen "/ip4/127.0.0.1/tcp/4001": listed twice`},
		{"listen twice, spelled differently", []string{"--listen", "/ip4/127.0.0.1/tcp/4001", "--listen", "/ip4/127.0.0.1/tcp/04001"}, `the same address as "/ip4/127.0.0.1/tcp/4001", listed twice`},
		{"too many listen addresses", slicesRepeatFlag("--listen", 33), "33 addresses, at most 32"},
		{"bootstrap many components", []string{"--bootstrap", "/ip4/127.0.0.1/tcp/1" + strings.Repeat("/ws", 20) + "/p2p/" + id}, "--bootstrap "},
		{"http service name", []string{"--http", "127.0.0.1:http"}, "port must be a decimal number"},
		{"http port too big", []string{"--http", "127.0.0.1:99999"}, "port must be a decimal number"},
		{"long mode", []string{"--mode", long}, "… (2097152 bytes): must be server"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			done := make(chan error, 1)
			go func() {
				args := append([]string{"--identity", "/tmp/k", "--data-dir", "/tmp/d"}, tt.args...)
				if !slices.Contains(tt.args, "--bootstrap") && !slices.Contains(tt.args, "--bootstrap-file") {
					args = append(args, "--bootstrap", testPeer)
				}
				_, err := loadArgsErr(args...)
				done <- err
			}()
			var err error
			select {
			case err = <-done:
			case <-time.After(10 * time.Second):
				t.Fatal("blocked")
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %v, want it to mention %q", err, tt.want)
			}
			if n := len(err.Error()); n > 600 {
				t.Fatalf("error of %d bytes: %.300s…", n, err)
			}
		})
	}
}

func slicesRepeatFlag(name string, n int) []string {
	var out []string
	for i := range n {
		out = append(out, name, fmt.Sprintf("/ip4/127.0.0.1/tcp/%d", 4001+i))
	}
	return out
}

// loadArgsErr is loadArgs with flag errors returned (as run reports them).
func loadArgsErr(args ...string) (config, error) {
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	var f runFlags
	f.define(fs)
	if err := parseFlags(fs, args, io.Discard); err != nil {
		return config{}, err
	}
	return f.load(fs)
}

func TestDecimalFlagsAccept(t *testing.T) {
	for in, want := range map[string]int{"16": 16, "+16": 16, "007": 7, "1000": 1000} {
		c, err := loadArgs(t, "--identity", "/tmp/k", "--data-dir", "/tmp/d", "--bootstrap", testPeer, "--min-peers", in)
		if err != nil || c.MinPeers != want {
			t.Errorf("--min-peers %s: %d, %v; want %d", in, c.MinPeers, err, want)
		}
	}
	var out, errOut strings.Builder
	if code := realMain([]string{"demo", "--nodes", "0x10"}, &out, &errOut); code != 2 || !strings.Contains(errOut.String(), "-nodes: not a decimal integer") {
		t.Errorf("demo --nodes 0x10: exit %d, %q", code, errOut.String())
	}
}
