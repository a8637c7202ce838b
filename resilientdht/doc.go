// Package resilientdht makes a go-libp2p host and its Kademlia DHT resilient
// in one call:
//
//	n, err := resilientdht.New(h, resilientdht.WithBootstrapPeers(peers...))
//	defer n.Close()
//
// New composes the module's packages the way the resilient-dht binary runs
// them: the host wrapped by dialer.Wrap (per-peer retry profiles, a shared
// retry budget, a per-peer rate limit and adaptive backoff), a DHT (Dual as
// kubo runs it, WAN, LAN, Plain, or the caller's own), a
// bootstrap.Bootstrapper with optional backup peers, and a healthmon.Monitor
// that runs the Bootstrapper's Recover when the node falls out of the
// network. The startup bootstrap runs in the background; WaitHealthy waits
// for the monitor's verdict.
//
//	      ┌──────────── Node ────────────┐
//	h ──► │ dialer.Host ◄── Bootstrapper │ ◄── Monitor (Probe, Recover)
//	      │     │                ▲       │
//	      │     └── DHT (on h) ──┘ table │
//	      └──────────────────────────────┘
//
// One owner of bootstrap dials: the bootstrap peers are given once
// (WithBootstrapPeers); the dialer gives them the bootstrap retry profile,
// the Bootstrapper dials them, and kad-dht's own bootstrap (its fixLowPeers
// loop, through a BootstrapPeersFunc that returns no peers) never does.
//
// Loopback and private networks work out of the box: on a node whose listen
// and bootstrap addresses are all loopback, the LAN DHT keeps loopback
// addresses (kubo's Routing.LoopbackAddressesOnLanDHT; see
// WithLoopbackAddressesOnLanDHT), and the LAN DHT runs as a server unless
// the mode is dht.ModeClient. A node that reached bootstrap peers but whose
// table stays empty after the refresh logs a warning naming the likely
// cause (a peer that speaks none of its DHT protocols, filtered addresses)
// and stays unhealthy.
//
// The host's connection manager stays the caller's; NewConnManager with
// DefaultConnsLow and DefaultConnsHigh is the one the binary runs.
//
// WebRTC: a host with go-libp2p's WebRTC-direct transport (in libp2p's
// defaults) can listen on /ip4/…/udp/PORT/webrtc-direct; the dialer gives
// a peer whose only usable addresses are /webrtc-direct the
// resilience.ForWebRTC profile (dialer.WithWebRTCConfig).
//
// Logs go to the go-log subsystem "resilience/resilientdht".
package resilientdht
