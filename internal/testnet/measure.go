package testnet

import (
	"context"
	"crypto/rand"
	"sync"
	"testing"
	"time"

	dht "github.com/libp2p/go-libp2p-kad-dht"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
)

// LiveTablePeers counts the peers of d's routing table that h is connected
// to: the health monitor's measure.
func LiveTablePeers(h host.Host, d *dht.IpfsDHT) int {
	n := 0
	for _, p := range d.RoutingTable().ListPeers() {
		if h.Network().Connectedness(p) == network.Connected {
			n++
		}
	}
	return n
}

// StartLookups makes d look up a random key every interval until the test
// ends, as a node in use does (its routing table then empties during an
// outage as a real one would). Each lookup is bounded by the interval.
func StartLookups(t testing.TB, d *dht.IpfsDHT, every time.Duration) {
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	t.Cleanup(func() {
		cancel()
		wg.Wait()
	})
	wg.Go(func() {
		tick := time.NewTicker(every)
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
			key := make([]byte, 16)
			_, _ = rand.Read(key)
			qctx, qcancel := context.WithTimeout(ctx, every)
			_, _ = d.GetClosestPeers(qctx, string(key))
			qcancel()
		}
	})
}
