package resilientdht_test

import (
	"context"
	"fmt"
	"time"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/chiral-network/go-libp2p-resilience/resilientdht"
)

// A user's host becomes resilient with one call. The first node stands in
// for a network's bootstrap node; everything stays on 127.0.0.1.
func Example() {
	h1, _ := libp2p.New(libp2p.ListenAddrStrings("/ip4/127.0.0.1/tcp/0"))
	first, _ := resilientdht.New(h1, resilientdht.WithMinPeers(1))
	defer first.Close()

	h, _ := libp2p.New(libp2p.ListenAddrStrings("/ip4/127.0.0.1/tcp/0")) // your host
	n, err := resilientdht.New(h, resilientdht.WithMinPeers(1),
		resilientdht.WithBootstrapPeers(peer.AddrInfo{ID: h1.ID(), Addrs: h1.Addrs()}))
	if err != nil {
		panic(err)
	}
	defer n.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	fmt.Println(n.WaitHealthy(ctx), n.TableSizes()["lan"])
	// Output: <nil> 1
}
