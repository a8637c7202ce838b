package healthmon

import (
	dht "github.com/libp2p/go-libp2p-kad-dht"
	"github.com/libp2p/go-libp2p-kad-dht/dual"
	"github.com/libp2p/go-libp2p/core/peer"
)

// RoutingTable is the health source of a Monitor: the peers in a DHT routing
// table. *kbucket.RoutingTable (what kad-dht's RoutingTable() returns) implements
// it; DHTTable and DualDHTTable adapt kad-dht instances.
//
// ListPeers must be safe for concurrent use and must not block for long; the
// monitor calls it on every check, without holding the lock of its IsHealthy,
// LastReport, Subscribe and Unsubscribe (a table callback may call those). The
// monitor never registers routing-table callbacks, so it never calls back into
// the table from one.
type RoutingTable interface {
	// ListPeers returns the peers currently in the table.
	ListPeers() []peer.ID
}

// DHTTable returns d's routing table as a RoutingTable.
func DHTTable(d *dht.IpfsDHT) RoutingTable { return d.RoutingTable() }

// DualDHTTable returns the union of the WAN and LAN routing tables of d.
func DualDHTTable(d *dual.DHT) RoutingTable {
	return unionTable{d.WAN.RoutingTable(), d.LAN.RoutingTable()}
}

// unionTable lists the peers of several tables, each once.
type unionTable []RoutingTable

func (u unionTable) ListPeers() []peer.ID {
	var out []peer.ID
	seen := make(map[peer.ID]struct{})
	for _, t := range u {
		for _, p := range t.ListPeers() {
			if _, dup := seen[p]; !dup {
				seen[p] = struct{}{}
				out = append(out, p)
			}
		}
	}
	return out
}
