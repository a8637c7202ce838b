package main

import (
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/chiral-network/go-libp2p-resilience/resilience"
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
		{[]string{"--listen", "tcp://x"}, `--listen "tcp://x"`},
	}
	for _, tt := range tests {
		_, err := loadArgs(t, tt.args...)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%v: error %v, want it to mention %q", tt.args, err, tt.want)
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
	})
}
