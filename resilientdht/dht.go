package resilientdht

import (
	"fmt"
	"strings"

	dht "github.com/libp2p/go-libp2p-kad-dht"
	"github.com/libp2p/go-libp2p-kad-dht/dual"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"
	manet "github.com/multiformats/go-multiaddr/net"

	"github.com/chiral-network/go-libp2p-resilience/bootstrap"
)

// buildDHT builds (or adopts) the DHT on h, the unwrapped host, and returns
// the Bootstrapper's and the monitor's views of it.
func (n *Node) buildDHT(h host.Host, cfg config) (bootstrap.RoutingTable, error) {
	switch {
	case cfg.dualDHT != nil:
		n.adoptDual(cfg.dualDHT)
		return bootstrap.DualDHT(cfg.dualDHT), nil
	case cfg.ipfsDHT != nil:
		n.adoptOne("dht", cfg.ipfsDHT)
		return bootstrap.DHT(cfg.ipfsDHT), nil
	}
	common := []dht.Option{dht.Mode(cfg.mode), dht.BootstrapPeersFunc(n.kadBootstrapPeers)}
	var lanFilter []dht.Option // keeps loopback addresses
	if n.loopback {
		lanFilter = []dht.Option{dht.AddressFilter(nil)}
	}
	lanMode := dht.ModeServer
	if cfg.mode == dht.ModeClient {
		lanMode = dht.ModeClient
	}
	switch cfg.kind {
	case Dual:
		// dual.New applies our options after its own, so nil replaces its
		// loopback filter; it forces the LAN half to server unless the WAN
		// half is a client.
		d, err := dual.New(h, dual.DHTOption(append(common, cfg.dhtOptions...)...), dual.LanDHTOption(lanFilter...))
		if err != nil {
			return nil, fmt.Errorf("resilientdht: dual DHT: %w", err)
		}
		n.adoptDual(d)
		return bootstrap.DualDHT(d), nil
	case WAN, LAN, Plain:
		o := common
		switch cfg.kind {
		case WAN: // as dual.New's WAN half
			o = append(o, dht.QueryFilter(dht.PublicQueryFilter), dht.RoutingTableFilter(dht.PublicRoutingTableFilter),
				dht.AddressFilter(func(addrs []ma.Multiaddr) []ma.Multiaddr { return ma.FilterAddrs(addrs, manet.IsPublicAddr) }))
		case LAN: // as dual.New's LAN half
			o = append(o, dht.ProtocolExtension(dual.LanExtension), dht.QueryFilter(dht.PrivateQueryFilter),
				dht.RoutingTableFilter(dht.PrivateRoutingTableFilter), dht.Mode(lanMode),
				dht.AddressFilter(func(addrs []ma.Multiaddr) []ma.Multiaddr {
					return ma.FilterAddrs(addrs, func(a ma.Multiaddr) bool { return !manet.IsIPLoopback(a) })
				}))
			o = append(o, lanFilter...)
		}
		d, err := dht.New(h, append(o, cfg.dhtOptions...)...)
		if err != nil {
			return nil, fmt.Errorf("resilientdht: %s DHT: %w", cfg.kind, err)
		}
		name := string(cfg.kind)
		if cfg.kind == Plain {
			name = "dht"
		}
		n.adoptOne(name, d)
		return bootstrap.DHT(d), nil
	}
	return nil, fmt.Errorf("resilientdht: WithDHT(%q): unknown kind", string(cfg.kind))
}

func (n *Node) adoptDual(d *dual.DHT) {
	n.routing, n.closeDHT = d, d.Close
	n.tables["wan"], n.tables["lan"] = d.WAN, d.LAN
}

func (n *Node) adoptOne(name string, d *dht.IpfsDHT) {
	n.routing, n.closeDHT = d, d.Close
	n.tables[name] = d
}

// loopbackOnLan decides WithLoopbackAddressesOnLanDHT.
func loopbackOnLan(cfg config, h host.Host) bool {
	switch cfg.loopback {
	case loopbackOn:
		return true
	case loopbackOff:
		return false
	}
	if !allLoopback(h.Network().ListenAddresses()) {
		return false
	}
	for _, pi := range cfg.bootstrapPeers {
		if !allLoopback(pi.Addrs) {
			return false
		}
	}
	return true
}

func isLoopback(a ma.Multiaddr) bool { return manet.IsIPLoopback(a) }

// emptyTableCause names the likely reason why peers the node is connected
// to are in none of its tables.
func (n *Node) emptyTableCause(ids []peer.ID) string {
	protos := dhtProtocols(n.kind)
	ps := n.host.Peerstore()
	var causes []string
	for _, id := range ids {
		known, _ := ps.GetProtocols(id)
		switch {
		case len(known) == 0:
			causes = append(causes, fmt.Sprintf("%s: identify has not completed (no protocols known)", id))
		case protos == nil:
			causes = append(causes, fmt.Sprintf("%s: it may speak no DHT protocol this DHT runs, or run as a DHT client", id))
		default:
			speaks, _ := ps.SupportsProtocols(id, protos...)
			switch {
			case len(speaks) == 0:
				causes = append(causes, fmt.Sprintf("%s speaks none of the DHT protocols this node runs %v (%s)", id, protos, otherKad(known)))
			case n.kind == WAN && !anyPublic(ps.Addrs(id)):
				causes = append(causes, fmt.Sprintf("%s has no public address: the WAN DHT takes only public peers (use LAN or Dual on private networks and loopback)", id))
			case n.kind != Plain && allLoopback(ps.Addrs(id)) && !n.loopback:
				causes = append(causes, fmt.Sprintf("%s has only loopback addresses, which the LAN DHT filters (WithLoopbackAddressesOnLanDHT)", id))
			default:
				causes = append(causes, fmt.Sprintf("%s speaks %v but did not enter the table (a DHT client? filtered addresses?)", id, speaks))
			}
		}
	}
	return strings.Join(causes, "; ")
}

// otherKad names the kad protocols a peer speaks, for the warning.
func otherKad[T ~string](known []T) string {
	var kad []string
	for _, p := range known {
		if strings.Contains(string(p), "/kad/") {
			kad = append(kad, string(p))
		}
	}
	if len(kad) == 0 {
		return "it speaks no Kademlia protocol"
	}
	return "it speaks only " + strings.Join(kad, ", ")
}

func anyPublic(addrs []ma.Multiaddr) bool {
	for _, a := range addrs {
		if manet.IsPublicAddr(a) {
			return true
		}
	}
	return false
}
