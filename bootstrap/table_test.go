package bootstrap

import (
	"errors"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p-kad-dht/dual"
)

// TestDualRefreshSkipsEmptyTables: with both tables empty, nothing is
// refreshed (kad-dht would fail the lookup and log it at WARN) and the
// channel says so at once.
func TestDualRefreshSkipsEmptyTables(t *testing.T) {
	h, err := libp2p.New(libp2p.ListenAddrStrings("/ip4/127.0.0.1/tcp/0"), libp2p.DisableMetrics())
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	d, err := dual.New(h)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	select {
	case err := <-DualDHT(d).RefreshRoutingTable():
		if !errors.Is(err, ErrTablesEmpty) {
			t.Fatalf("refresh of two empty tables: %v, want ErrTablesEmpty", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("refresh of two empty tables did not end")
	}
}
