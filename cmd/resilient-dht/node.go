package main

import (
	"errors"
	"path/filepath"
	"syscall"

	"github.com/libp2p/go-libp2p"
	dht "github.com/libp2p/go-libp2p-kad-dht"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/chiral-network/go-libp2p-resilience/bootstrap"
	"github.com/chiral-network/go-libp2p-resilience/dialer"
	"github.com/chiral-network/go-libp2p-resilience/healthmon"
	"github.com/chiral-network/go-libp2p-resilience/resilience"
	"github.com/chiral-network/go-libp2p-resilience/resilientdht"
)

// nodeConfig is everything needed to build a node; `run` fills it from flags,
// `demo` for each in-process node.
type nodeConfig struct {
	key            crypto.PrivKey
	listen         []ma.Multiaddr
	bootstrapPeers []peer.AddrInfo
	mode           dht.ModeOpt
	dhtKind        string // "dual", "wan", "lan", or "plain" (demo: one DHT, loopback allowed)
	loopbackOnLan  string // "auto", "true" or "false" (--loopback-addresses-on-lan-dht)
	minPeers       int
	connsLow       int // connection manager watermarks (0: resilientdht's defaults)
	connsHigh      int
	bootstrapCfg   resilience.RetryConfig
	peerCfg        resilience.RetryConfig
	backupFile     string // "" = no backup peers
	registry       *prometheus.Registry
	tolerateListen bool // skip listen addresses the machine cannot use (IPv6 missing)
	hostOptions    []libp2p.Option
	healthOptions  []healthmon.Option
}

// node is a running resilientdht.Node, with its parts at hand for the
// status page, the status line and the demo.
type node struct {
	*resilientdht.Node
	host *dialer.Host
	boot *bootstrap.Bootstrapper
	mon  *healthmon.Monitor
}

func parseMode(s string) dht.ModeOpt {
	switch s {
	case "server":
		return dht.ModeServer
	case "client":
		return dht.ModeClient
	default:
		return dht.ModeAuto
	}
}

// newNode builds the host and makes it resilient (resilientdht.New), which
// starts the monitor and the startup bootstrap. The caller must Close it.
func newNode(c nodeConfig) (*node, error) {
	h, err := newHost(c)
	if err != nil {
		return nil, err
	}
	opts := []resilientdht.Option{
		resilientdht.WithDHT(resilientdht.Kind(c.dhtKind)),
		resilientdht.WithMode(c.mode),
		resilientdht.WithMinPeers(c.minPeers),
		resilientdht.WithBootstrapRetry(c.bootstrapCfg),
		resilientdht.WithPeerRetry(c.peerCfg),
		resilientdht.WithBootstrapPeers(c.bootstrapPeers...),
		resilientdht.WithHealthOptions(c.healthOptions...),
	}
	switch c.loopbackOnLan {
	case "true", "false":
		opts = append(opts, resilientdht.WithLoopbackAddressesOnLanDHT(c.loopbackOnLan == "true"))
	}
	if c.backupFile != "" {
		opts = append(opts, resilientdht.WithBackupFile(c.backupFile))
	}
	if c.registry != nil {
		opts = append(opts, resilientdht.WithRegisterer(c.registry))
	}
	rn, err := resilientdht.New(h, opts...)
	if err != nil {
		h.Close() // New leaves h open on an option error; closing twice is harmless
		return nil, err
	}
	return &node{Node: rn, host: rn.Host(), boot: rn.Bootstrapper(), mon: rn.Monitor()}, nil
}

// newHost builds the libp2p host: the key, a connection manager, metrics
// (or none), the extra options, and a listener on every address.
func newHost(c nodeConfig) (host.Host, error) {
	low, high := c.connsLow, c.connsHigh
	if high == 0 {
		low, high = resilientdht.DefaultConnsLow, resilientdht.DefaultConnsHigh
	}
	cm, err := resilientdht.NewConnManager(low, high)
	if err != nil {
		return nil, err
	}
	opts := []libp2p.Option{
		libp2p.Identity(c.key),
		libp2p.NoListenAddrs,         // listenAll reports each address that fails
		libp2p.ConnectionManager(cm), // resource manager: go-libp2p's default, on
		// transports: go-libp2p's defaults (TCP, QUIC, WebTransport, WebRTC-direct)
	}
	if c.registry != nil {
		opts = append(opts, libp2p.PrometheusRegisterer(c.registry))
	} else {
		opts = append(opts, libp2p.DisableMetrics())
	}
	opts = append(opts, c.hostOptions...)
	h, err := libp2p.New(opts...)
	if err != nil {
		return nil, err
	}
	if err := listenAll(h.Network(), c.listen, c.tolerateListen); err != nil {
		h.Close()
		return nil, err
	}
	return h, nil
}

// listenAll listens on every address; one that fails is bad input naming it
// (a port in use, an address not on this machine). With tolerate (the default
// list), addresses of a family the machine lacks are skipped, as long as one
// address works.
func listenAll(n network.Network, addrs []ma.Multiaddr, tolerate bool) error {
	ok := 0
	for _, a := range addrs {
		if err := n.Listen(a); err != nil {
			if tolerate && (errors.Is(err, syscall.EAFNOSUPPORT) || errors.Is(err, syscall.EADDRNOTAVAIL)) {
				log.Infow("skipping listen address the machine cannot use", "addr", a, "err", err)
				continue
			}
			return badInput("--listen %s: %v", a, unwrapSyscall(err))
		}
		ok++
	}
	if ok == 0 {
		return badInput("--listen: none of %v could be used", addrs)
	}
	return nil
}

// unwrapSyscall shortens "listen tcp4 1.2.3.4:5: bind: address already in use"
// style errors to their cause when there is one.
func unwrapSyscall(err error) error {
	var errno syscall.Errno
	if errors.As(err, &errno) {
		return errno
	}
	return err
}

// Tables returns the size of each routing table by name.
func (n *node) Tables() map[string]int { return n.TableSizes() }

func backupPath(dataDir string) string { return filepath.Join(dataDir, "backup-peers.json") }
