package resilientdht

import (
	"errors"
	"fmt"

	dht "github.com/libp2p/go-libp2p-kad-dht"
	"github.com/libp2p/go-libp2p-kad-dht/dual"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/chiral-network/go-libp2p-resilience/dialer"
	"github.com/chiral-network/go-libp2p-resilience/healthmon"
	"github.com/chiral-network/go-libp2p-resilience/resilience"
)

// Kind names the DHT a Node builds (WithDHT).
type Kind string

const (
	// Dual is a WAN DHT (/ipfs/kad/1.0.0, public peers only) and a LAN DHT
	// (/ipfs/lan/kad/1.0.0, private and loopback peers only), as kubo runs.
	// The LAN half is always a server unless the mode is dht.ModeClient.
	Dual Kind = "dual"
	// WAN is the WAN half of Dual alone: public peers only.
	WAN Kind = "wan"
	// LAN is the LAN half of Dual alone. Its mode is dht.ModeServer unless
	// WithMode(dht.ModeClient) is given (on a private network kad-dht's
	// auto mode would stay a client, which no other peer adds to its table).
	LAN Kind = "lan"
	// Plain is one DHT on /ipfs/kad/1.0.0 without address filters: every
	// peer, public, private or loopback, may enter its table. For test and
	// private networks.
	Plain Kind = "plain"
)

// Option configures New. Options are applied in order; a later option
// replaces what an earlier one set.
type Option func(*config) error

// loopbackSetting is WithLoopbackAddressesOnLanDHT's tri-state.
type loopbackSetting int

const (
	loopbackAuto loopbackSetting = iota
	loopbackOn
	loopbackOff
)

type config struct {
	kind           Kind
	ipfsDHT        *dht.IpfsDHT
	dualDHT        *dual.DHT
	mode           dht.ModeOpt
	bootstrapPeers []peer.AddrInfo
	minPeers       int
	bootstrapCfg   resilience.RetryConfig
	peerCfg        resilience.RetryConfig
	backupFile     string
	registerer     prometheus.Registerer
	loopback       loopbackSetting
	guards         bool
	dhtOptions     []dht.Option
	dialerOptions  []dialer.Option
	healthOptions  []healthmon.Option
}

func defaultConfig() config {
	return config{
		kind:         Dual,
		mode:         dht.ModeAuto,
		minPeers:     DefaultMinPeers,
		bootstrapCfg: DefaultBootstrapRetry(),
		peerCfg:      resilience.ForDHTPeer(),
		guards:       true,
	}
}

// DefaultMinPeers is the default of WithMinPeers.
const DefaultMinPeers = 4

// DefaultBootstrapRetry is the default of WithBootstrapRetry and of the
// resilient-dht binary: resilience.ForDHTBootstrap() (5 attempts, 2 s
// initial delay, 60 s cap) with full jitter instead of the seed's ±7.5 %
// proportional band. In the simulated bootstrap-node restart herd
// (internal/simnet TestBootstrapHerd) full jitter drained fastest; the
// seed's band took 1.17x to 1.22x as long at 100 nodes, 1.2x at 300 and
// 1.04x at 500; at 1,000, where the bootstrap nodes' accept limit alone set
// the pace, all four strategies drained within 1.02x of each other. Pass
// resilience.ForDHTBootstrap() to WithBootstrapRetry for the seed's profile.
func DefaultBootstrapRetry() resilience.RetryConfig {
	c := resilience.ForDHTBootstrap()
	c.Jitter = resilience.JitterFull
	return c
}

// WithDHT selects the DHT New builds: Dual (the default), WAN, LAN or Plain.
func WithDHT(k Kind) Option {
	return func(c *config) error {
		switch k {
		case Dual, WAN, LAN, Plain:
		default:
			return fmt.Errorf("resilientdht: WithDHT(%q): must be %q, %q, %q or %q", string(k), Dual, WAN, LAN, Plain)
		}
		c.kind, c.ipfsDHT, c.dualDHT = k, nil, nil
		return nil
	}
}

// WithIpfsDHT makes the Node use d, built by the caller on the same host,
// instead of building one. The Node owns d from then on: Close closes it.
// Give d no dht.BootstrapPeers: kad-dht would dial them itself, racing the
// Bootstrapper (without that option it dials none). WithMode,
// WithDHTOptions and WithLoopbackAddressesOnLanDHT do not apply to it.
func WithIpfsDHT(d *dht.IpfsDHT) Option {
	return func(c *config) error {
		if d == nil {
			return errors.New("resilientdht: WithIpfsDHT: d must not be nil")
		}
		c.ipfsDHT, c.dualDHT, c.kind = d, nil, ""
		return nil
	}
}

// WithDualDHT is WithIpfsDHT for a dual DHT built by the caller.
func WithDualDHT(d *dual.DHT) Option {
	return func(c *config) error {
		if d == nil || d.WAN == nil || d.LAN == nil {
			return errors.New("resilientdht: WithDualDHT: d and both its halves must not be nil")
		}
		c.dualDHT, c.ipfsDHT, c.kind = d, nil, ""
		return nil
	}
}

// WithMode sets the DHT mode (dht.ModeAuto, ModeClient, ModeServer,
// ModeAutoServer). Default: dht.ModeAuto; a LAN DHT (alone or in Dual)
// runs as a server unless the mode is dht.ModeClient.
func WithMode(m dht.ModeOpt) Option {
	return func(c *config) error {
		switch m {
		case dht.ModeAuto, dht.ModeClient, dht.ModeServer, dht.ModeAutoServer:
		default:
			return fmt.Errorf("resilientdht: WithMode(%d): not a dht.ModeOpt", m)
		}
		c.mode = m
		return nil
	}
}

// WithBootstrapPeers sets the bootstrap peers, each with an ID and at least
// one address (bootstrap.ParseAddrs reads multiaddrs). They are given
// once: the Bootstrapper dials them, the dialer gives them the bootstrap
// retry profile, and kad-dht does not dial them itself. An entry for the
// host itself is skipped. Default: none (the node can then only use backup
// peers and the peers that dial it, as the first node of a network does).
func WithBootstrapPeers(peers ...peer.AddrInfo) Option {
	return func(c *config) error {
		for i, pi := range peers {
			if pi.ID == "" {
				return fmt.Errorf("resilientdht: WithBootstrapPeers: peers[%d]: empty peer ID", i)
			}
			if len(pi.Addrs) == 0 {
				return fmt.Errorf("resilientdht: WithBootstrapPeers: peers[%d] (%s): no addresses", i, pi.ID)
			}
		}
		c.bootstrapPeers = append([]peer.AddrInfo(nil), peers...)
		return nil
	}
}

// WithMinPeers sets how many routing-table peers the node needs to be
// healthy (and the Bootstrapper aims for). Default: DefaultMinPeers (4).
func WithMinPeers(n int) Option {
	return func(c *config) error {
		if n < 1 {
			return fmt.Errorf("resilientdht: WithMinPeers(%d): must be at least 1", n)
		}
		c.minPeers = n
		return nil
	}
}

// WithBootstrapRetry sets the retry profile of the bootstrap and backup
// peers. Default: DefaultBootstrapRetry() (ForDHTBootstrap's 5 attempts,
// 2 s initial delay, 60 s cap, with full jitter).
func WithBootstrapRetry(cfg resilience.RetryConfig) Option {
	return func(c *config) error {
		if err := cfg.Validate(); err != nil {
			return fmt.Errorf("resilientdht: WithBootstrapRetry: %w", err)
		}
		c.bootstrapCfg = cfg
		return nil
	}
}

// WithPeerRetry sets the retry profile of every other peer. Default:
// resilience.ForDHTPeer() (3 attempts, 1 s initial delay, 30 s cap).
// Peers whose only addresses are /webrtc-direct get resilience.ForWebRTC()
// instead (the dialer's WithWebRTCConfig).
func WithPeerRetry(cfg resilience.RetryConfig) Option {
	return func(c *config) error {
		if err := cfg.Validate(); err != nil {
			return fmt.Errorf("resilientdht: WithPeerRetry: %w", err)
		}
		c.peerCfg = cfg
		return nil
	}
}

// WithBackupFile keeps backup peers (routing-table peers seen by this and
// earlier runs) in the JSON file path; they are dialled when bootstrap
// peers fail. Default: "" (no backup peers).
func WithBackupFile(path string) Option {
	return func(c *config) error {
		if path == "" {
			return errors.New("resilientdht: WithBackupFile: empty path")
		}
		c.backupFile = path
		return nil
	}
}

// WithRegisterer registers the metrics of the dialer, the retry trackers
// and the health monitor with reg. Default: nil (no metrics).
func WithRegisterer(reg prometheus.Registerer) Option {
	return func(c *config) error {
		if reg == nil {
			return errors.New("resilientdht: WithRegisterer: reg must not be nil")
		}
		c.registerer = reg
		return nil
	}
}

// WithLoopbackAddressesOnLanDHT keeps (true) or drops (false) loopback
// addresses in the LAN DHT (kind Dual or LAN), named after kubo's
// Routing.LoopbackAddressesOnLanDHT: the addresses of peers learnt from
// other peers' answers, and the addresses this node gives out. kad-dht's
// LAN DHT drops them, so nodes on one machine find each other only
// through peers they dial directly. Default: automatic — on when every
// listen address of the host and every address of every bootstrap peer
// is a loopback address, off otherwise.
func WithLoopbackAddressesOnLanDHT(on bool) Option {
	return func(c *config) error {
		c.loopback = loopbackOff
		if on {
			c.loopback = loopbackOn
		}
		return nil
	}
}

// WithoutRetryGuards turns off the guards New puts on every retry round by
// default: a retry budget shared by all peers (100 tokens, 0.2 back per
// success, 1 per second), a per-peer rate limit (1 attempt per second,
// bursts of 3) and adaptive backoff (delays stretch while nearly every
// attempt fails).
func WithoutRetryGuards() Option {
	return func(c *config) error {
		c.guards = false
		return nil
	}
}

// WithDHTOptions adds kad-dht options to the DHT New builds (to both
// halves of Dual), after New's own; for example dht.ProtocolPrefix for a
// private network. Default: none.
func WithDHTOptions(opts ...dht.Option) Option {
	return func(c *config) error {
		for i, o := range opts {
			if o == nil {
				return fmt.Errorf("resilientdht: WithDHTOptions: opts[%d] is nil", i)
			}
		}
		c.dhtOptions = append(c.dhtOptions, opts...)
		return nil
	}
}

// WithDialerOptions adds options to dialer.Wrap, after New's own.
// Default: none.
func WithDialerOptions(opts ...dialer.Option) Option {
	return func(c *config) error {
		for i, o := range opts {
			if o == nil {
				return fmt.Errorf("resilientdht: WithDialerOptions: opts[%d] is nil", i)
			}
		}
		c.dialerOptions = append(c.dialerOptions, opts...)
		return nil
	}
}

// WithHealthOptions adds options to healthmon.New, after New's own (min
// peers, recoverer, manager, metrics). Default: none.
func WithHealthOptions(opts ...healthmon.Option) Option {
	return func(c *config) error {
		for i, o := range opts {
			if o == nil {
				return fmt.Errorf("resilientdht: WithHealthOptions: opts[%d] is nil", i)
			}
		}
		c.healthOptions = append(c.healthOptions, opts...)
		return nil
	}
}
