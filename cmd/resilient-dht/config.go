package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"

	"github.com/chiral-network/go-libp2p-resilience/bootstrap"
	"github.com/chiral-network/go-libp2p-resilience/internal/fsutil"
	"github.com/chiral-network/go-libp2p-resilience/internal/textutil"
	"github.com/chiral-network/go-libp2p-resilience/resilience"
	"github.com/chiral-network/go-libp2p-resilience/resilientdht"
)

// maxConns bounds --conns-high: far beyond what a node's file descriptors allow.
const maxConns = 1_000_000

// maxConfigFileSize bounds what --config reads (a real config is a few hundred bytes).
const maxConfigFileSize = 1 << 20

// config is what `run` needs: the JSON config file's content with flags on top.
type config struct {
	Listen        []string `json:"listen,omitempty"`
	Bootstrap     []string `json:"bootstrap,omitempty"`
	BootstrapFile string   `json:"bootstrap_file,omitempty"`
	Identity      string   `json:"identity,omitempty"`
	DataDir       string   `json:"data_dir,omitempty"`
	MinPeers      int      `json:"min_peers,omitempty"`
	ConnsLow      int      `json:"conns_low,omitempty"`
	ConnsHigh     int      `json:"conns_high,omitempty"`
	Mode          string   `json:"mode,omitempty"`
	DHT           string   `json:"dht,omitempty"`
	HTTP          string   `json:"http,omitempty"`
	LogLevel      string   `json:"log_level,omitempty"`
	Retry         struct {
		DHTBootstrap json.RawMessage `json:"dht_bootstrap,omitempty"`
		DHTPeer      json.RawMessage `json:"dht_peer,omitempty"`
	} `json:"retry"`
	// LoopbackOnLanDHT is kubo's Routing.LoopbackAddressesOnLanDHT: "auto"
	// (on when listen and bootstrap addresses are all loopback), "true", "false".
	LoopbackOnLanDHT string `json:"loopback_addresses_on_lan_dht,omitempty"`

	bootstrapCfg  resilience.RetryConfig // the profiles, with the file's retry section applied
	peerCfg       resilience.RetryConfig
	defaultListen bool // Listen is the default list (IPv6 may be missing on the machine)

	bootstrapPeers []peer.AddrInfo // parsed from Bootstrap or BootstrapFile
	listenAddrs    []ma.Multiaddr
}

func defaultConfig() config {
	var c config
	c.Listen = []string{"/ip4/0.0.0.0/tcp/4001", "/ip4/0.0.0.0/udp/4001/quic-v1", "/ip6/::/tcp/4001", "/ip6/::/udp/4001/quic-v1"}
	c.MinPeers = 4
	c.Mode = "auto"
	c.DHT = "dual"
	c.LoopbackOnLanDHT = "auto"
	c.HTTP = "127.0.0.1:9464"
	c.LogLevel = "info"
	c.bootstrapCfg = resilientdht.DefaultBootstrapRetry()
	c.peerCfg = resilience.ForDHTPeer()
	c.defaultListen = true
	if dir, err := os.UserConfigDir(); err == nil {
		c.Identity = filepath.Join(dir, "resilient-dht", "identity.key")
		c.DataDir = filepath.Join(dir, "resilient-dht")
	}
	return c
}

// stringList is a repeatable string flag.
type stringList struct {
	values []string
	set    bool
}

func (s *stringList) String() string { return strings.Join(s.values, ",") }
func (s *stringList) Set(v string) error {
	s.values = append(s.values, v)
	s.set = true
	return nil
}

// runFlags defines the flags of `run` on fs; apply merges the ones set into a
// config loaded from --config (flags win).
type runFlags struct {
	configFile                                        string
	listen, bootstrap                                 stringList
	bootstrapFile, identity, dataDir, mode, dht, http string
	loopbackOnLanDHT                                  string
	logLevel                                          string
	minPeers, connsLow, connsHigh                     int
}

func (f *runFlags) define(fs *flag.FlagSet) {
	d := defaultConfig()
	fs.StringVar(&f.configFile, "config", "", "JSON config `file` (flags override it)")
	fs.Var(&f.listen, "listen", "listen `multiaddr` (repeatable; default TCP and QUIC on port 4001, all interfaces)")
	fs.Var(&f.bootstrap, "bootstrap", "bootstrap peer `multiaddr` with /p2p/ (repeatable; default: the public Amino DHT list)")
	fs.StringVar(&f.bootstrapFile, "bootstrap-file", "", "`file` of bootstrap multiaddrs, one per line")
	fs.StringVar(&f.identity, "identity", d.Identity, "private key `file` (created with mode 0600 if missing)")
	fs.StringVar(&f.dataDir, "data-dir", d.DataDir, "`dir`ectory for backup peers")
	f.minPeers = d.MinPeers
	fs.Var(decimalInt{&f.minPeers}, "min-peers", "`number` of routing-table peers needed to be healthy (decimal digits)")
	fs.Var(decimalInt{&f.connsLow}, "conns-low", fmt.Sprintf("connection manager low water: trimming keeps this `number` of connections (decimal digits; 0: the default, %d or --min-peers if larger)", resilientdht.DefaultConnsLow))
	fs.Var(decimalInt{&f.connsHigh}, "conns-high", fmt.Sprintf("connection manager high water: above this `number` of connections, trim down to --conns-low (decimal digits; 0: the default, %d or --conns-low if larger)", resilientdht.DefaultConnsHigh))
	fs.StringVar(&f.mode, "mode", d.Mode, "DHT mode: server, client or auto")
	fs.StringVar(&f.dht, "dht", d.DHT, "which DHT: dual (WAN + LAN, as kubo), wan or lan (lan runs as a server unless --mode client)")
	fs.StringVar(&f.loopbackOnLanDHT, "loopback-addresses-on-lan-dht", d.LoopbackOnLanDHT, "keep loopback addresses in the LAN DHT (kubo's Routing.LoopbackAddressesOnLanDHT): auto (when listen and bootstrap addresses are all loopback), true or false")
	fs.StringVar(&f.http, "http", d.HTTP, "`address` for /metrics, /healthz and /status (empty: off)")
	fs.StringVar(&f.logLevel, "log-level", d.LogLevel, "log level: debug, info, warn, error")
}

// load builds the config: defaults, then the config file, then the flags set.
func (f *runFlags) load(fs *flag.FlagSet) (config, error) {
	c := defaultConfig()
	if f.configFile != "" {
		if err := readConfigFile(f.configFile, &c); err != nil {
			return c, err
		}
	}
	fs.Visit(func(fl *flag.Flag) {
		switch fl.Name {
		case "listen":
			c.Listen, c.defaultListen = f.listen.values, false
		case "bootstrap":
			c.Bootstrap = f.bootstrap.values
			if !isSet(fs, "bootstrap-file") {
				c.BootstrapFile = "" // the flag replaces the file's setting
			}
		case "bootstrap-file":
			c.BootstrapFile = f.bootstrapFile
			if !isSet(fs, "bootstrap") {
				c.Bootstrap = nil
			}
		case "identity":
			c.Identity = f.identity
		case "data-dir":
			c.DataDir = f.dataDir
		case "min-peers":
			c.MinPeers = f.minPeers
		case "conns-low":
			c.ConnsLow = f.connsLow
		case "conns-high":
			c.ConnsHigh = f.connsHigh
		case "mode":
			c.Mode = f.mode
		case "dht":
			c.DHT = f.dht
		case "loopback-addresses-on-lan-dht":
			c.LoopbackOnLanDHT = f.loopbackOnLanDHT
		case "http":
			c.HTTP = f.http
		case "log-level":
			c.LogLevel = f.logLevel
		}
	})
	return c, c.validate()
}

func isSet(fs *flag.FlagSet, name string) bool {
	set := false
	fs.Visit(func(f *flag.Flag) { set = set || f.Name == name })
	return set
}

// readConfigFile reads the --config file: a regular file (never blocking on a
// FIFO) of at most maxConfigFileSize, strict JSON (see checkStrictJSON) with
// known fields only. Errors name the file and the field and quote at most
// textutil.MaxQuoted bytes of a value.
func readConfigFile(path string, c *config) error {
	shown := textutil.Clip(path, textutil.MaxQuoted)
	data, err := fsutil.ReadFile(path, maxConfigFileSize)
	if err != nil {
		return fmt.Errorf("config file %s: %w", shown, err)
	}
	if err := checkStrictJSON(data); err != nil {
		return fmt.Errorf("config file %s: %s", shown, textutil.Clip(err.Error(), 2*textutil.MaxQuoted))
	}
	defaults := c.Listen
	c.Listen = nil // to tell whether the file sets it
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(c); err != nil {
		return fmt.Errorf("config file %s: %s", shown, textutil.Clip(err.Error(), 2*textutil.MaxQuoted))
	}
	if c.Listen != nil {
		c.defaultListen = false
	} else {
		c.Listen = defaults
	}
	// The seed's field names; only the fields present override the profile.
	for _, r := range []struct {
		name string
		raw  json.RawMessage
		dst  *resilience.RetryConfig
	}{{"retry.dht_bootstrap", c.Retry.DHTBootstrap, &c.bootstrapCfg}, {"retry.dht_peer", c.Retry.DHTPeer, &c.peerCfg}} {
		if len(r.raw) > 0 {
			if err := json.Unmarshal(r.raw, r.dst); err != nil {
				return fmt.Errorf("config file %s: %s: %s", shown, r.name, textutil.Clip(err.Error(), 2*textutil.MaxQuoted))
			}
		}
	}
	return nil
}

func unwrapPathError(err error) error {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

// validate checks every field and parses the addresses.
func (c *config) validate() error {
	if len(c.Listen) == 0 {
		return errors.New("--listen: at least one listen address is needed")
	}
	addrs, err := parseListenAddrs(c.Listen)
	if err != nil {
		return err
	}
	c.listenAddrs = addrs
	switch {
	case c.BootstrapFile != "" && len(c.Bootstrap) > 0:
		return errors.New("--bootstrap and --bootstrap-file: use one or the other")
	case c.BootstrapFile != "":
		peers, err := bootstrap.ParseAddrsFile(c.BootstrapFile)
		if err != nil {
			return fmt.Errorf("--bootstrap-file: %w", err)
		}
		if err := checkBootstrapAddrs("--bootstrap-file", peers); err != nil {
			return err
		}
		c.bootstrapPeers = peers
	case len(c.Bootstrap) > 0:
		peers, err := bootstrap.ParseAddrs(c.Bootstrap)
		if err != nil {
			return fmt.Errorf("--bootstrap: %w", err)
		}
		if err := checkBootstrapAddrs("--bootstrap", peers); err != nil {
			return err
		}
		c.bootstrapPeers = peers
	default:
		c.bootstrapPeers = bootstrap.DefaultBootstrapPeers()
	}
	if c.MinPeers < 1 || c.MinPeers > 1000 {
		return fmt.Errorf("--min-peers %d: must be between 1 and 1000", c.MinPeers)
	}
	// Unset limits follow the ones set: the defaults, raised to --min-peers
	// and to --conns-low.
	if c.ConnsLow == 0 {
		c.ConnsLow = max(resilientdht.DefaultConnsLow, c.MinPeers)
	}
	if c.ConnsHigh == 0 {
		c.ConnsHigh = max(resilientdht.DefaultConnsHigh, c.ConnsLow)
	}
	switch {
	case c.ConnsHigh < 1 || c.ConnsHigh > maxConns:
		return fmt.Errorf("--conns-high %d: must be between 1 and %d", c.ConnsHigh, maxConns)
	case c.ConnsLow > c.ConnsHigh:
		return fmt.Errorf("--conns-low %d: must not be above --conns-high (%d)", c.ConnsLow, c.ConnsHigh)
	case c.ConnsLow < c.MinPeers:
		return fmt.Errorf("--conns-low %d: must be at least --min-peers (%d): trimming below it could close the connections the node's health counts", c.ConnsLow, c.MinPeers)
	}
	switch c.Mode {
	case "server", "client", "auto":
	default:
		return fmt.Errorf("--mode %s: must be server, client or auto", textutil.Quote(c.Mode))
	}
	switch c.DHT {
	case "dual", "wan", "lan":
	default:
		return fmt.Errorf("--dht %s: must be dual, wan or lan", textutil.Quote(c.DHT))
	}
	switch c.LoopbackOnLanDHT {
	case "auto", "true", "false":
	default:
		return fmt.Errorf("--loopback-addresses-on-lan-dht %q: must be auto, true or false", c.LoopbackOnLanDHT)
	}
	if c.HTTP != "" {
		if err := checkHTTPAddr(c.HTTP); err != nil {
			return fmt.Errorf("--http %s: %w", textutil.Quote(c.HTTP), err)
		}
	}
	switch c.LogLevel {
	case "debug", "info", "warn", "error":
	default:
		return fmt.Errorf("--log-level %s: must be debug, info, warn or error", textutil.Quote(c.LogLevel))
	}
	if c.Identity == "" {
		return errors.New("--identity: no key file given and no user config directory to default to")
	}
	if c.DataDir == "" {
		return errors.New("--data-dir: no directory given and no user config directory to default to")
	}
	return nil
}

// checkHTTPAddr checks an HTTP listen address: host:port with a decimal port.
func checkHTTPAddr(addr string) error {
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		return errors.New("not host:port")
	}
	if n, err := strconv.ParseUint(port, 10, 16); err != nil || (n == 0 && port != "0") {
		return errors.New("port must be a decimal number from 0 to 65535")
	}
	return nil
}

// checkDataDir makes sure dir exists (creating it 0700) and is writable.
func checkDataDir(dir string) error {
	shown := textutil.Clip(dir, textutil.MaxQuoted)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("--data-dir %s: %w", shown, unwrapPathError(err))
	}
	f, err := os.CreateTemp(dir, ".write-test-*")
	if err != nil {
		return fmt.Errorf("--data-dir %s: not writable: %w", shown, unwrapPathError(err))
	}
	f.Close()
	os.Remove(f.Name())
	return nil
}
