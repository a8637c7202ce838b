package bootstrap_test

import (
	"context"
	"fmt"
	"log"
	"time"

	"github.com/libp2p/go-libp2p"
	dht "github.com/libp2p/go-libp2p-kad-dht"

	"github.com/chiral-network/go-libp2p-resilience/bootstrap"
	"github.com/chiral-network/go-libp2p-resilience/dialer"
	"github.com/chiral-network/go-libp2p-resilience/healthmon"
)

// The Bootstrapper is what healthmon recovers with.
var _ healthmon.Recoverer = (*bootstrap.Bootstrapper)(nil)

// A DHT server joins its network through configured bootstrap peers and
// remembers backup peers for the next start. (The address below is a
// documentation address; a real node would use its network's peers, or
// bootstrap.DefaultBootstrapPeers() for the public Amino DHT.)
func ExampleBootstrapper() {
	peers, err := bootstrap.ParseAddrs([]string{
		"/ip4/192.0.2.1/tcp/4001/p2p/12D3KooWD3eckifWpRn9wQpMG9R9hX3sD158z7EqHWmweQAJU5SA",
	})
	if err != nil {
		log.Fatal(err) // names the bad entry and why
	}

	h, err := libp2p.New(libp2p.ListenAddrStrings("/ip4/0.0.0.0/tcp/4001"))
	if err != nil {
		log.Fatal(err)
	}
	dh, err := dialer.Wrap(h) // retrying Connect; Close closes h too
	if err != nil {
		log.Fatal(err)
	}
	defer dh.Close()
	// kad-dht gets the plain host: its speculative query dials should not retry.
	d, err := dht.New(h, dht.Mode(dht.ModeServer))
	if err != nil {
		log.Fatal(err)
	}
	defer d.Close()

	b, err := bootstrap.New(dh, bootstrap.DHT(d), peers,
		bootstrap.WithBackupFile("/var/lib/mynode/backup-peers.json"),
		bootstrap.WithMinPeers(4))
	if err != nil {
		log.Fatal(err)
	}
	defer b.Close() // saves the backup peers

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	res, err := b.Bootstrap(ctx)
	if err != nil {
		log.Fatal(err) // wraps bootstrap.ErrNoBootstrapPeers and every peer's cause
	}
	fmt.Printf("connected to %d peers (%d failed), routing table holds %d\n",
		len(res.Connected), len(res.Failed), res.TableSize)
	for _, f := range res.Failed {
		fmt.Printf("  %s: %d attempts: %v\n", f.ID, f.Attempts, f.Err)
	}
}
