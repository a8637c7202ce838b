// Package simnet runs large DHT networks in one process and in virtual time:
// every node is a full go-libp2p host on a simulated QUIC network
// (go-libp2p's x/simlibp2p, links from github.com/marcopolo/simnet) with
// kad-dht, and either the whole resilient stack composed as resilient-dht
// composes it (resilientdht.New: dialer, bootstrap, healthmon) or kad-dht
// alone, for comparison.
//
// A Network must be built and used inside a testing/synctest bubble
// (synctest.Test): time then only advances when every goroutine of the
// network waits, so a simulated minute takes as long as the work in it.
// kad-dht runs on it unchanged; two things are needed: identify's address
// discovery is off (simlibp2p's own note: it stalls synctest) and so is the
// health monitor's kernel watcher (a goroutine blocked in a netlink read is
// never durably blocked, so the virtual clock would stop).
//
// A seed fixes the nodes' keys and whatever a scenario draws from Rand; the
// interleaving of goroutines inside the bubble is the Go scheduler's, so two
// runs with one seed agree in their choices, not to the dial.
//
// Faults come from a connection gater per node: Cut closes a node's
// connections and refuses its dials and accepts until Restore, and
// AcceptRate limits the new inbound connections a node accepts per second.
// The gater also counts every outbound dial and every inbound connection.
package simnet
