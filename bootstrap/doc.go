// Package bootstrap joins a go-libp2p host to a Kademlia DHT
// (go-libp2p-kad-dht) and keeps it joinable across outages and restarts.
//
// kad-dht's own Bootstrap never reports failure, and its fallback dials the
// bootstrap peers only when the routing table is completely empty, every
// two minutes; kubo's bootstrapper retries on a fixed 30-second ticker. This
// package instead dials every bootstrap peer concurrently with the
// resilience.ForDHTBootstrap retry profile (5 attempts, 2 s initial delay
// doubling up to 60 s, jitter factor 0.15) through the retrying connect of package
// dialer, then refreshes the routing table and waits until enough of its peers
// are connected:
//
//	bootstrap + backup peers ──Connect, ForDHTBootstrap──▶ connected peers
//	     │                                                    │ protect in the connection
//	     │ all unreachable: error naming each cause           │ manager, tag "bootstrap"
//	     ▼                                                    ▼
//	backup peers from the last run               refresh the kad-dht routing table,
//	                                             wait for MinPeers connected table peers
//
// # Bootstrap peers
//
// ParseAddrs and ParseAddrsFile turn configured multiaddrs such as
// /ip4/192.0.2.1/tcp/4001/p2p/12D3KooW... into peer.AddrInfo values, one per
// peer, and reject bad entries with an error (wrapping ErrBadAddr) that
// names the entry and what is wrong. /dnsaddr entries are kept and resolved
// by libp2p when dialled. DefaultBootstrapPeers returns the public Amino DHT
// (IPFS) bootstrap list shipped with kad-dht. These functions keep no
// state and are safe for concurrent use.
//
// # Bootstrapper
//
// New(h, rt, peers, opts...) takes the host wrapped by package dialer (whose
// dial scheduler and trackers it uses), the DHT's routing table (DHT and
// DualDHT adapt kad-dht instances to the small RoutingTable interface, which
// package healthmon uses too) and the bootstrap peers. Bootstrap dials them all
// concurrently (each a round of the dialer's scheduler at bootstrap priority,
// admitted by the dialer's one dial gate, dialer.WithMaxConcurrentDials),
// protects each connected bootstrap peer in the host's connection manager under
// the tag "bootstrap" (ProtectTag) so that connection trimming never drops it,
// dials the backup peers as soon as a bootstrap peer fails, refreshes the
// routing table and waits until WithMinPeers routing-table peers are connected
// or the refresh ends. Its Result lists the connected and the failed peers with
// attempts and causes, and the table size; it fails only when no peer at all
// could be reached (ErrNoBootstrapPeers, joining every peer's cause).
//
// Probe and Recover are the recovery hooks of package healthmon (its
// Recoverer interface): Probe makes one single dial to the next bootstrap
// or backup peer in a rotation that skips connected peers (evidence that the
// network is back is a new connection), so that a node cut off from the
// network notices its return with few dials — and closes and redials a
// connected peer that never entered the routing table. Recover dials bootstrap
// and backup peers at once (Exhausted peers get a new round, rounds waiting
// out their backoff dial now), refreshes the routing table, and ends the retry
// rounds still running once WithMinPeers routing-table peers are connected.
//
// A Bootstrapper is safe for concurrent use; Close stops its goroutine,
// saves the backup peers and removes its protections.
//
// # Backup peers
//
// Like kubo, the package remembers up to 20 routing-table peers that are
// connected and reachable on direct (non-relay) addresses, excluding the
// configured bootstrap peers, and saves them periodically
// (WithSaveInterval, default hourly), after a successful Bootstrap or Recover,
// and on Close, to a JSON file (WithBackupFile):
//
//	{"version":1,"saved_at":"2024-05-01T12:00:00Z","peers":[{"id":"12D3KooW...","addrs":["/ip4/192.0.2.7/tcp/4001"]}]}
//
// The file is written atomically (temporary file in the same directory,
// fsync, rename, directory fsync) with mode 0600. On the next start these
// peers are dialled as soon as a bootstrap peer fails, or has not connected
// within the retry profile's initial delay, so a node can rejoin the
// network even when every configured bootstrap peer is gone.
// A missing file is normal; an unreadable or corrupt file is logged as a
// warning and ignored, never a crash, and it is replaced only by a later
// save that has peers to write.
//
// The package logs through go-log/v2 under the subsystem
// "resilience/bootstrap"; per-peer detail is at Debug level.
package bootstrap
