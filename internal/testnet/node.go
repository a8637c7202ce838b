package testnet

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	logging "github.com/ipfs/go-log/v2"
	"github.com/libp2p/go-libp2p"
	dht "github.com/libp2p/go-libp2p-kad-dht"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	rcmgr "github.com/libp2p/go-libp2p/p2p/host/resource-manager"
	"github.com/libp2p/go-libp2p/p2p/transport/tcp"
	ma "github.com/multiformats/go-multiaddr"
	manet "github.com/multiformats/go-multiaddr/net"
)

var log = logging.Logger("resilience/testnet")

const (
	// DefaultStartRetry is how long Start keeps retrying while the fixed port
	// is busy, unless WithStartRetry says otherwise.
	DefaultStartRetry = 10 * time.Second
	bindRetryPause    = 100 * time.Millisecond
	// ConnectTimeout bounds each dial made by Connect and ConnectAll.
	ConnectTimeout = 30 * time.Second
	// isolateTimeout bounds how long Isolate waits for the last conns to go.
	isolateTimeout = 10 * time.Second
)

type config struct {
	startRetry time.Duration
	dht        bool
	dhtMode    dht.ModeOpt
	dhtOpts    []dht.Option
	hostOpts   []libp2p.Option
	noListen   bool
}

// Option configures a Node.
type Option func(*config)

// WithDHT also runs a kad-dht instance in the given mode (default: no DHT).
// The DHT is created with dht.New(h, ...) on every start and closed on Stop.
// It has no bootstrap peers and its filters accept loopback peers.
func WithDHT(mode dht.ModeOpt) Option {
	return func(c *config) { c.dht, c.dhtMode = true, mode }
}

// WithDHTOptions adds kad-dht options, applied after this package's own (so
// they win). Default: none. Has no effect without WithDHT.
func WithDHTOptions(opts ...dht.Option) Option {
	return func(c *config) { c.dhtOpts = append(c.dhtOpts, opts...) }
}

// WithHostOptions adds libp2p options, applied after this package's own.
// Default: none. Options that this package already sets once (identity,
// transport, connection gater) make libp2p.New fail if given again.
func WithHostOptions(opts ...libp2p.Option) Option {
	return func(c *config) { c.hostOpts = append(c.hostOpts, opts...) }
}

// WithNoListen makes a client-only host without listeners (default: listen
// on 127.0.0.1). Such a node can dial out but cannot be dialed.
func WithNoListen() Option {
	return func(c *config) { c.noListen = true }
}

// WithStartRetry sets how long Start retries while the node's port is still
// busy (default DefaultStartRetry, 10 s; 0 = try once).
func WithStartRetry(d time.Duration) Option {
	return func(c *config) { c.startRetry = d }
}

// Node is a real go-libp2p host on 127.0.0.1 with a fixed identity and a
// fixed port, which a test can stop, restart and cut off from the network.
// A Node is safe for concurrent use.
type Node struct {
	t     testing.TB
	cfg   config
	key   crypto.PrivKey
	id    peer.ID
	gater *Gater

	mu    sync.Mutex
	addrs []ma.Multiaddr // fixed listen addrs, set by the first start
	h     host.Host      // nil while stopped
	d     *dht.IpfsDHT   // nil while stopped or without WithDHT
}

// NewNode starts a node with a fresh ed25519 key on a free 127.0.0.1 port and
// registers t.Cleanup(Stop).
func NewNode(t testing.TB, opts ...Option) *Node {
	t.Helper()
	key, _, err := crypto.GenerateEd25519Key(rand.Reader)
	if err != nil {
		t.Fatalf("testnet: generate key: %v", err)
	}
	id, err := peer.IDFromPrivateKey(key)
	if err != nil {
		t.Fatalf("testnet: peer ID from key: %v", err)
	}
	n := &Node{t: t, key: key, id: id, gater: &Gater{}, cfg: config{startRetry: DefaultStartRetry}}
	for _, o := range opts {
		o(&n.cfg)
	}
	t.Cleanup(n.Stop)
	n.Start()
	return n
}

// NewNetwork starts n nodes with the same options; they are not connected
// (see ConnectAll).
func NewNetwork(t testing.TB, n int, opts ...Option) []*Node {
	t.Helper()
	if n < 0 {
		t.Fatalf("testnet: NewNetwork: n must be >= 0, got %d", n)
	}
	nodes := make([]*Node, n)
	for i := range nodes {
		nodes[i] = NewNode(t, opts...)
	}
	return nodes
}

// Host returns the current host, which changes on every restart; nil while
// stopped.
func (n *Node) Host() host.Host {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.h
}

// DHT returns the current DHT; nil while stopped or without WithDHT.
func (n *Node) DHT() *dht.IpfsDHT {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.d
}

// ID returns the node's fixed peer ID.
func (n *Node) ID() peer.ID { return n.id }

// PrivKey returns the node's fixed private key.
func (n *Node) PrivKey() crypto.PrivKey { return n.key }

// Gater returns the connection gater, which every host of this node uses.
func (n *Node) Gater() *Gater { return n.gater }

// Addrs returns the fixed 127.0.0.1 listen addresses (empty with
// WithNoListen); valid while stopped.
func (n *Node) Addrs() []ma.Multiaddr {
	n.mu.Lock()
	defer n.mu.Unlock()
	return append([]ma.Multiaddr(nil), n.addrs...)
}

// AddrInfo returns the ID and the fixed listen addresses; valid while stopped.
func (n *Node) AddrInfo() peer.AddrInfo {
	return peer.AddrInfo{ID: n.id, Addrs: n.Addrs()}
}

// Running reports whether the node has a live host.
func (n *Node) Running() bool { return n.Host() != nil }

// Start starts the node again with the same key on the same port, retrying
// while the port is busy (see WithStartRetry); t.Fatal on failure. A no-op while
// running.
func (n *Node) Start() {
	n.t.Helper()
	if err := n.TryStart(); err != nil {
		n.t.Fatalf("testnet: start %s: %v", n.id, err)
	}
}

// TryStart is Start that returns the error instead of calling t.Fatal, for
// use off the test goroutine.
func (n *Node) TryStart() error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.h != nil {
		return nil
	}
	deadline := time.Now().Add(n.cfg.startRetry)
	for {
		err := n.startLocked()
		if err == nil || !isAddrInUse(err) || time.Now().After(deadline) {
			return err
		}
		log.Debugw("port busy, retrying", "peer", n.id, "addrs", n.addrs, "err", err)
		time.Sleep(bindRetryPause)
	}
}

func (n *Node) startLocked() error {
	listen := []ma.Multiaddr{ma.StringCast("/ip4/127.0.0.1/tcp/0")}
	switch {
	case n.cfg.noListen:
		listen = nil
	case n.addrs != nil:
		listen = n.addrs
		// Probe the port first: libp2p.New leaks its half-built host when
		// listening fails.
		for _, a := range listen {
			l, err := manet.Listen(a)
			if err != nil {
				return err
			}
			_ = l.Close()
		}
	}
	opts := []libp2p.Option{
		libp2p.Identity(n.key),
		libp2p.Transport(tcp.NewTCPTransport, tcp.DisableReuseport()),
		libp2p.ListenAddrs(listen...),
		libp2p.ConnectionGater(n.gater),
		libp2p.DisableRelay(),
	}
	if listen == nil {
		opts = append(opts, libp2p.NoListenAddrs)
	}
	opts = append(opts, n.cfg.hostOpts...)
	opts = append(opts, defaultResourceManager)
	h, err := libp2p.New(opts...)
	if err != nil {
		return fmt.Errorf("libp2p.New: %w", err)
	}
	if !n.cfg.noListen && n.addrs == nil {
		n.addrs = h.Network().ListenAddresses()
	}
	if n.cfg.dht {
		all := func(any, peer.AddrInfo) bool { return true }
		dopts := append([]dht.Option{
			dht.Mode(n.cfg.dhtMode),
			dht.BootstrapPeers(),
			dht.QueryFilter(all),
			dht.RoutingTableFilter(func(any, peer.ID) bool { return true }),
			dht.AddressFilter(nil),
		}, n.cfg.dhtOpts...)
		d, err := dht.New(h, dopts...)
		if err != nil {
			_ = h.Close()
			return fmt.Errorf("dht.New: %w", err)
		}
		n.d = d
	}
	n.h = h
	log.Debugw("node started", "peer", n.id, "addrs", n.addrs)
	return nil
}

// defaultResourceManager installs an unlimited resource manager unless the
// caller's host options already set one. It runs last, so no rcmgr is built
// (and leaked) when an earlier option fails.
func defaultResourceManager(cfg *libp2p.Config) error {
	if cfg.ResourceManager != nil {
		return nil
	}
	rm, err := rcmgr.NewResourceManager(rcmgr.NewFixedLimiter(rcmgr.InfiniteLimits))
	if err != nil {
		return err
	}
	return cfg.Apply(libp2p.ResourceManager(rm))
}

func isAddrInUse(err error) bool {
	// libp2p flattens listen errors with %s, so errors.Is alone is not enough.
	return errors.Is(err, syscall.EADDRINUSE) || strings.Contains(err.Error(), "address already in use")
}

// Stop closes the DHT and the host and waits for them; idempotent.
func (n *Node) Stop() {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.h == nil {
		return
	}
	if n.d != nil {
		if err := n.d.Close(); err != nil {
			log.Debugw("dht close", "peer", n.id, "err", err)
		}
		n.d = nil
	}
	if err := n.h.Close(); err != nil {
		log.Debugw("host close", "peer", n.id, "err", err)
	}
	n.h = nil
	log.Debugw("node stopped", "peer", n.id)
}

// Isolate cuts the node off: its gater refuses every dial and accept (also
// across restarts) and all current connections are closed. Peers that dialed
// it meanwhile keep it in their swarm dial backoff; Connect bypasses that.
func (n *Node) Isolate() {
	if h := n.Host(); h != nil {
		Isolate(h, n.gater)
	} else {
		n.gater.BlockAll(true)
	}
}

// Isolate cuts h off through its gater g: g refuses every dial and accept,
// and h's connections are closed — swept until none is left, as a conn that
// was mid-upgrade when BlockAll went in may still land in the swarm after
// the first sweep (for at most 10 s).
func Isolate(h host.Host, g *Gater) {
	g.BlockAll(true)
	deadline := time.Now().Add(isolateTimeout)
	for {
		conns := h.Network().Conns()
		if len(conns) == 0 {
			return
		}
		for _, c := range conns {
			_ = c.Close()
		}
		if time.Now().After(deadline) {
			log.Warnw("isolate: connections remain", "peer", h.ID(), "count", len(h.Network().Conns()))
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// Rejoin undoes Isolate (BlockAll(false)); per-peer blocks stay. It does not
// reconnect.
func (n *Node) Rejoin() { n.gater.BlockAll(false) }

// Connect connects a to b (or b to a if b does not listen) with a 30 s
// timeout, bypassing the swarm dial backoff; t.Fatal on failure.
func Connect(t testing.TB, a, b *Node) {
	t.Helper()
	if b.cfg.noListen {
		a, b = b, a
	}
	ha := a.Host()
	if ha == nil || !b.Running() {
		t.Fatalf("testnet: connect %s -> %s: both nodes must be running", a.id, b.id)
	}
	if len(b.Addrs()) == 0 {
		t.Fatalf("testnet: connect %s -> %s: neither node listens", a.id, b.id)
	}
	ctx, cancel := context.WithTimeout(context.Background(), ConnectTimeout)
	defer cancel()
	ctx = network.WithForceDirectDial(ctx, "testnet")
	if err := ha.Connect(ctx, b.AddrInfo()); err != nil {
		t.Fatalf("testnet: connect %s -> %s: %v", a.id, b.id, err)
	}
}

// ConnectAll connects every pair of nodes (full mesh); see Connect.
func ConnectAll(t testing.TB, nodes ...*Node) {
	t.Helper()
	for i, a := range nodes {
		for _, b := range nodes[i+1:] {
			Connect(t, a, b)
		}
	}
}
