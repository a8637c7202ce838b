package bootstrap

import (
	dht "github.com/libp2p/go-libp2p-kad-dht"
	"github.com/libp2p/go-libp2p/core/peer"
)

// RoutingTable is the part of a Kademlia DHT the Bootstrapper uses. DHT
// adapts a go-libp2p-kad-dht instance; tests and other DHTs can bring their
// own. Implementations must be safe for concurrent use.
type RoutingTable interface {
	// RefreshRoutingTable starts a refresh of the routing table (lookups
	// that fill its buckets) and returns a channel that yields the
	// refresh's error, or nil, when it ends. The channel must be buffered
	// or otherwise safe to abandon: the Bootstrapper stops reading it when
	// its ctx ends.
	RefreshRoutingTable() <-chan error
	// RoutingTableSize returns the number of peers in the routing table.
	RoutingTableSize() int
	// RoutingTablePeers returns the peers in the routing table.
	RoutingTablePeers() []peer.ID
}

// DHT returns d as a RoutingTable (d.RefreshRoutingTable,
// d.RoutingTable().Size and d.RoutingTable().ListPeers). DHT(nil) returns
// nil, which New rejects.
func DHT(d *dht.IpfsDHT) RoutingTable {
	if d == nil {
		return nil
	}
	return kadTable{d}
}

type kadTable struct{ d *dht.IpfsDHT }

func (t kadTable) RefreshRoutingTable() <-chan error { return t.d.RefreshRoutingTable() }
func (t kadTable) RoutingTableSize() int             { return t.d.RoutingTable().Size() }
func (t kadTable) RoutingTablePeers() []peer.ID      { return t.d.RoutingTable().ListPeers() }
