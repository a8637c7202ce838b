package netwatch

import (
	"net"
	"net/netip"

	"github.com/libp2p/go-libp2p/core/network"
	manet "github.com/multiformats/go-multiaddr/net"
)

// ConnsOnAddr returns n's connections whose local address is ip. After ip was
// removed from the host they can never carry a packet again, yet their muxer notices
// only after its keep-alive times out (~30 s for yamux); closing them at once makes
// the node see the outage at once.
func ConnsOnAddr(n network.Network, ip netip.Addr) []network.Conn {
	ip = ip.Unmap()
	var out []network.Conn
	for _, c := range n.Conns() {
		if a, err := manet.ToIP(c.LocalMultiaddr()); err == nil {
			if got, ok := netip.AddrFromSlice(a); ok && got.Unmap() == ip {
				out = append(out, c)
			}
		}
	}
	return out
}

// ConnsOn returns the connections of n that a [Change] cut off, for a caller that
// reacts to losses at once (close them, or ping their peers with a short timeout):
//
//   - AddrRemoved: the connections on the removed address (see [ConnsOnAddr]);
//   - LinkDown: the connections on the addresses the link still has, looked up in
//     the process's network namespace (a link that no longer exists has none);
//   - any other change: none.
//
// A default route lost is not linked to connections: a peer on the local network may
// still be reachable, so check those connections (ping) instead of closing them.
func ConnsOn(n network.Network, c Change) []network.Conn {
	switch c.Kind {
	case AddrRemoved:
		return ConnsOnAddr(n, c.Addr.Addr())
	case LinkDown:
		ifi, err := net.InterfaceByName(c.Link)
		if err != nil {
			return nil
		}
		addrs, err := ifi.Addrs()
		if err != nil {
			return nil
		}
		var out []network.Conn
		for _, a := range addrs {
			if ipn, ok := a.(*net.IPNet); ok {
				if p, ok := prefixFromIPNet(*ipn); ok {
					out = append(out, ConnsOnAddr(n, p.Addr())...)
				}
			}
		}
		return out
	default:
		return nil
	}
}
