package resilientdht

import (
	"context"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
)

// emptyTableRewarn is how long the same empty-table warning stays quiet.
const emptyTableRewarn = 10 * time.Minute

// recoverer is the monitor's healthmon.Recoverer: the Bootstrapper's Probe
// and Recover, and after a Recover that reached peers but left every table
// empty, the same warning as after the startup bootstrap (so a node that is
// connected but in no table does not stay unhealthy silently).
type recoverer struct{ n *Node }

func (r recoverer) Probe(ctx context.Context) error { return r.n.boot.Probe(ctx) }

func (r recoverer) Recover(ctx context.Context) error {
	err := r.n.boot.Recover(ctx)
	if err != nil || ctx.Err() != nil || r.n.tableSize() > 0 {
		return err
	}
	var ids []peer.ID
	nw := r.n.host.Network()
	for _, pi := range append(r.n.boot.Peers(), r.n.boot.BackupPeers()...) {
		if nw.Connectedness(pi.ID) == network.Connected {
			ids = append(ids, pi.ID)
		}
	}
	if len(ids) > 0 {
		r.n.warnEmptyTable("recovery", ids)
	}
	return err
}

// emptyWarner remembers the last empty-table warning, to say each cause
// once per emptyTableRewarn.
type emptyWarner struct {
	mu    sync.Mutex
	cause string
	at    time.Time
}

// warnEmptyTable logs, at WARN, that the node reached the peers ids but its
// routing table is empty, naming the likely cause.
func (n *Node) warnEmptyTable(after string, ids []peer.ID) {
	cause := n.emptyTableCause(ids)
	n.warned.mu.Lock()
	quiet := cause == n.warned.cause && time.Since(n.warned.at) < emptyTableRewarn
	if !quiet {
		n.warned.cause, n.warned.at = cause, time.Now()
	}
	n.warned.mu.Unlock()
	if quiet {
		return
	}
	log.Warnw("reached bootstrap peers but the routing table is empty after the refresh; the node stays unhealthy",
		"after", after, "dht", n.kindName(), "connected", len(ids), "cause", cause)
}

// tableSize is the size of the largest table.
func (n *Node) tableSize() int {
	size := 0
	for _, d := range n.tables {
		size = max(size, d.RoutingTable().Size())
	}
	return size
}
