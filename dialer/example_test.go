package dialer_test

import (
	"context"
	"fmt"
	"time"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/chiral-network/go-libp2p-resilience/dialer"
	"github.com/chiral-network/go-libp2p-resilience/resilience"
)

// ExampleWrap wraps a host so Connect retries, and keeps a peer connected.
func ExampleWrap() {
	newHost := func() *dialer.Host {
		raw, err := libp2p.New(libp2p.ListenAddrStrings("/ip4/127.0.0.1/tcp/0"), libp2p.DisableRelay())
		if err != nil {
			panic(err)
		}
		h, err := dialer.Wrap(raw,
			dialer.WithDefaultConfig(resilience.ForDHTPeer()),
			dialer.WithOnRetry(func(id peer.ID, attempt uint32, err error, delay time.Duration) {
				fmt.Printf("reconnecting (attempt %d, next in %v)\n", attempt, delay.Round(100*time.Millisecond))
			}),
		)
		if err != nil {
			panic(err)
		}
		return h
	}
	a, b := newHost(), newHost()
	defer b.Close()
	defer a.Close() // first: closing b first would make a reconnect

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	partner := peer.AddrInfo{ID: b.ID(), Addrs: b.Addrs()}
	if err := a.Connect(ctx, partner); err != nil {
		fmt.Println("connect failed:", err)
		return
	}
	a.KeepConnected(partner) // reconnect in the background whenever the connection drops

	t, _ := a.Manager().Get(dialer.TrackerID(partner.ID))
	fmt.Println("tracker:", t.State)
	// Output: tracker: connected
}
