// Package simnet runs large DHT networks in one process and in virtual time:
// every node is a full go-libp2p host on a simulated QUIC network
// (go-libp2p's x/simlibp2p, links from github.com/marcopolo/simnet: 10 ms
// one-way latency and 20 Mbit/s up and down by default) with kad-dht, and
// either the whole resilient stack from resilientdht.New (dialer, bootstrap,
// healthmon; a plain kad-dht server) or kad-dht alone, for comparison.
//
// A Network must be built and used inside a testing/synctest bubble
// (synctest.Test): time only advances when every goroutine of the network
// waits, so a simulated minute takes as long as the work in it, and CPU
// work takes no virtual time (a node answers any load at once; only
// latency, bandwidth and the accept limit below pace the network). kad-dht
// runs on it unchanged. Two things are off:
//
//   - the health monitor's kernel network watcher (healthmon.WithNetWatch):
//     a goroutine blocked in a netlink read is never durably blocked, so the
//     virtual clock stops (tried: a 12-node network then times out);
//   - identify's address discovery, as simlibp2p does (its note says it
//     stalls synctest; with go-libp2p v0.51.0 our 12-node tests pass with it
//     on, and every node listens on its public address anyway).
//
// A seed fixes the nodes' keys (so the DHT's XOR topology), the bootstrap
// nodes and whatever a scenario draws from Rand. Goroutine interleaving in
// the bubble and the libraries' own randomness (jitter, QUIC connection IDs)
// are not seeded: two runs of one seed agree in topology and choices, not
// to the dial.
//
// Every node runs the resilient-dht binary's connection manager
// (resilientdht.NewConnManager with its default limits). Nodes start all at
// the same instant, or spread over Config.JoinOver: memory follows the
// connections open at once (about 110 KiB per connection end, nearly all
// quic-go and crypto/tls state), and a node keeps the connections of its
// startup refresh for the manager's 20-s grace period, so 1,000 nodes
// joining over 5 minutes peak at 11.7 GiB while joining over 1 minute
// passed 13 GiB halfway.
//
// Faults: Cut makes a node lose every packet it sends or should receive
// (its connections die by QUIC's idle timeout) until Restore.
// Config.BootAcceptRate limits the new inbound connections a bootstrap node
// accepts per second; the excess is refused before the QUIC handshake, as
// go-libp2p's resource manager refuses one. A connection gater per node
// counts outbound dials, inbound attempts and accepted connections.
package simnet
