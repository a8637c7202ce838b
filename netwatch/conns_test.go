package netwatch

import (
	"net"
	"net/netip"
	"slices"
	"testing"

	"github.com/libp2p/go-libp2p/core/network"
	ma "github.com/multiformats/go-multiaddr"
)

// fakeNet has the connections the test gives it; nothing else of network.Network is implemented.
type fakeNet struct {
	network.Network
	conns []network.Conn
}

func (n *fakeNet) Conns() []network.Conn { return n.conns }

type fakeConn struct {
	network.Conn
	local ma.Multiaddr
}

func (c *fakeConn) LocalMultiaddr() ma.Multiaddr { return c.local }

func conn(t *testing.T, local string) *fakeConn {
	t.Helper()
	return &fakeConn{local: ma.StringCast(local)}
}

func TestConnsOnAddr(t *testing.T) {
	v4a := conn(t, "/ip4/192.0.2.10/tcp/4001")
	v4b := conn(t, "/ip4/192.0.2.10/udp/4001/quic-v1")
	other := conn(t, "/ip4/192.0.2.11/tcp/4001")
	v6 := conn(t, "/ip6/2001:db8::7/tcp/4001")
	relay := conn(t, "/p2p-circuit") // no IP: never matches
	n := &fakeNet{conns: []network.Conn{v4a, other, v4b, v6, relay}}

	for _, tc := range []struct {
		ip   string
		want []network.Conn
	}{
		{"192.0.2.10", []network.Conn{v4a, v4b}},
		{"::ffff:192.0.2.10", []network.Conn{v4a, v4b}},
		{"2001:db8::7", []network.Conn{v6}},
		{"198.51.100.1", nil},
	} {
		if got := ConnsOnAddr(n, netip.MustParseAddr(tc.ip)); !slices.Equal(got, tc.want) {
			t.Errorf("ConnsOnAddr(%s) = %v, want %v", tc.ip, got, tc.want)
		}
	}
	if got := ConnsOn(n, Change{Kind: AddrRemoved, Link: "eth0", Addr: netip.MustParsePrefix("192.0.2.10/24")}); !slices.Equal(got, []network.Conn{v4a, v4b}) {
		t.Errorf("ConnsOn(AddrRemoved 192.0.2.10/24) = %v, want the two connections on it", got)
	}
	for _, k := range []Kind{AddrAdded, LinkUp, DefaultRouteLost, DefaultRouteGained, Woke} {
		if got := ConnsOn(n, Change{Kind: k, Link: "eth0", Addr: netip.MustParsePrefix("192.0.2.10/24")}); got != nil {
			t.Errorf("ConnsOn(%s) = %v, want none", k, got)
		}
	}
}

// LinkDown finds the connections on the link's addresses, read from the system: the
// loopback link's 127.0.0.1 exists everywhere.
func TestConnsOnLinkDown(t *testing.T) {
	lo, err := loopbackName()
	if err != nil {
		t.Skip(err)
	}
	onLo := conn(t, "/ip4/127.0.0.1/tcp/4001")
	n := &fakeNet{conns: []network.Conn{onLo, conn(t, "/ip4/192.0.2.10/tcp/4001")}}
	if got := ConnsOn(n, Change{Kind: LinkDown, Link: lo}); !slices.Equal(got, []network.Conn{onLo}) {
		t.Errorf("ConnsOn(%s down) = %v, want the connection on 127.0.0.1", lo, got)
	}
	if got := ConnsOn(n, Change{Kind: LinkDown, Link: "no-such-link0"}); got != nil {
		t.Errorf("ConnsOn(a link that does not exist) = %v, want none", got)
	}
}

func loopbackName() (string, error) {
	ifs, err := net.Interfaces()
	if err != nil {
		return "", err
	}
	for _, i := range ifs {
		addrs, _ := i.Addrs()
		for _, a := range addrs {
			if n, ok := a.(*net.IPNet); ok && n.IP.Equal(net.IPv4(127, 0, 0, 1)) {
				return i.Name, nil
			}
		}
	}
	return "", net.UnknownNetworkError("no interface holds 127.0.0.1")
}
