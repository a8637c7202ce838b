package bootstrap

import (
	"errors"

	dht "github.com/libp2p/go-libp2p-kad-dht"
	"github.com/libp2p/go-libp2p-kad-dht/dual"
	"github.com/libp2p/go-libp2p/core/peer"
)

// RoutingTable is the part of a Kademlia DHT the module uses: the
// Bootstrapper refreshes it, and the health monitor (package healthmon)
// counts its connected peers. DHT and DualDHT adapt go-libp2p-kad-dht
// instances; tests and other DHTs can bring their own. Implementations must
// be safe for concurrent use, and ListPeers must not block for long (the
// monitor calls it on every check).
//
// The rule for a dual DHT (DualDHT): its table is the union of the WAN and
// LAN tables — a peer counts once if it is in either.
type RoutingTable interface {
	// ListPeers returns the peers currently in the table.
	ListPeers() []peer.ID
	// RefreshRoutingTable starts a refresh of the routing table (lookups
	// that fill its buckets) and returns a channel that yields the
	// refresh's error, or nil, when it ends. The channel must be buffered
	// or otherwise safe to abandon: the Bootstrapper stops reading it when
	// its ctx ends.
	RefreshRoutingTable() <-chan error
}

// DHT returns d as a RoutingTable. DHT(nil) returns nil, which New rejects.
func DHT(d *dht.IpfsDHT) RoutingTable {
	if d == nil {
		return nil
	}
	return kadTable{d}
}

type kadTable struct{ d *dht.IpfsDHT }

func (t kadTable) RefreshRoutingTable() <-chan error { return t.d.RefreshRoutingTable() }
func (t kadTable) ListPeers() []peer.ID              { return t.d.RoutingTable().ListPeers() }

// DualDHT returns d as a RoutingTable: the union of its WAN and LAN tables.
// A refresh refreshes the tables that hold a peer; an empty one is skipped
// (its lookup has no peer to ask and fails at once, which kad-dht logs at WARN
// over several lines), and with both empty the refresh yields
// ErrTablesEmpty at once. DualDHT(nil) returns nil, which New rejects.
func DualDHT(d *dual.DHT) RoutingTable {
	if d == nil {
		return nil
	}
	return dualTable{d}
}

// ErrTablesEmpty is what a DualDHT refresh yields when neither table has a
// peer to query.
var ErrTablesEmpty = errors.New("bootstrap: both routing tables are empty; nothing to refresh")

type dualTable struct{ d *dual.DHT }

func (t dualTable) ListPeers() []peer.ID {
	wan, lan := t.d.WAN.RoutingTable().ListPeers(), t.d.LAN.RoutingTable().ListPeers()
	out := make([]peer.ID, 0, len(wan)+len(lan))
	seen := make(map[peer.ID]struct{}, len(wan)+len(lan))
	for _, ps := range [][]peer.ID{wan, lan} {
		for _, p := range ps {
			if _, dup := seen[p]; !dup {
				seen[p] = struct{}{}
				out = append(out, p)
			}
		}
	}
	return out
}

func (t dualTable) RefreshRoutingTable() <-chan error {
	out := make(chan error, 1)
	var chans []<-chan error
	for _, d := range []*dht.IpfsDHT{t.d.WAN, t.d.LAN} {
		if d.RoutingTable().Size() > 0 {
			chans = append(chans, d.RefreshRoutingTable())
		}
	}
	if len(chans) == 0 {
		out <- ErrTablesEmpty
		return out
	}
	go func() { // ends when the refreshes do (kad-dht always answers)
		var errs []error
		for _, ch := range chans {
			errs = append(errs, <-ch)
		}
		out <- errors.Join(errs...)
	}()
	return out
}
