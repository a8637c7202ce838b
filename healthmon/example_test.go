package healthmon_test

import (
	"context"
	"fmt"

	"github.com/libp2p/go-libp2p"
	dht "github.com/libp2p/go-libp2p-kad-dht"
	"github.com/libp2p/go-libp2p/p2p/transport/tcp"

	"github.com/chiral-network/go-libp2p-resilience/bootstrap"
	"github.com/chiral-network/go-libp2p-resilience/healthmon"
)

// A node that has not joined the DHT yet is Unhealthy. In a real node, pass the
// Bootstrapper as Recoverer (WithRecoverer) and Start the monitor.
func ExampleNew() {
	h, err := libp2p.New(libp2p.Transport(tcp.NewTCPTransport), libp2p.ListenAddrStrings("/ip4/127.0.0.1/tcp/0"))
	if err != nil {
		panic(err)
	}
	defer h.Close()
	d, err := dht.New(h, dht.Mode(dht.ModeServer), dht.BootstrapPeers()) // no public bootstrap peers
	if err != nil {
		panic(err)
	}
	defer d.Close()

	m, err := healthmon.New(h, bootstrap.DHT(d), healthmon.WithMinPeers(4))
	if err != nil {
		panic(err)
	}
	defer m.Close()
	rep := m.CheckHealth(context.Background())
	fmt.Println(rep.Status, rep.TablePeersConnected, rep.MinPeersThreshold, m.IsHealthy())
	// Output: unhealthy 0 4 false
}
