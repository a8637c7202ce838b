package resilientdht

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	logging "github.com/ipfs/go-log/v2"
	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/chiral-network/go-libp2p-resilience/healthmon"
)

// TestRecoverWarnsOncePerCause: a Recover that reaches the only bootstrap
// peer (which speaks no DHT protocol) and leaves the table empty warns as
// the startup bootstrap did, but says one cause once per emptyTableRewarn.
func TestRecoverWarnsOncePerCause(t *testing.T) {
	logs := captureWarnings(t)
	bare, err := libp2p.New(libp2p.ListenAddrStrings("/ip4/127.0.0.1/tcp/0"), libp2p.DisableMetrics())
	if err != nil {
		t.Fatal(err)
	}
	defer bare.Close()
	h, err := libp2p.New(libp2p.ListenAddrStrings("/ip4/127.0.0.1/tcp/0"), libp2p.DisableMetrics())
	if err != nil {
		t.Fatal(err)
	}
	n, err := New(h, WithDHT(LAN), WithMinPeers(1), WithBootstrapPeers(peer.AddrInfo{ID: bare.ID(), Addrs: bare.Addrs()}),
		WithHealthOptions(healthmon.WithNetWatch(false), healthmon.WithCheckInterval(time.Hour)))
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	<-n.Bootstrapped()
	const msg = "routing table is empty after the refresh"
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	r := recoverer{n}
	for range 2 {
		if err := r.Recover(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if got := logs.count(msg); got != 1 {
		t.Fatalf("%d warnings after the startup bootstrap and two Recovers, want 1 (one cause)\n%s", got, logs.String())
	}
	n.warned.mu.Lock()
	n.warned.at = n.warned.at.Add(-emptyTableRewarn)
	n.warned.mu.Unlock()
	if err := r.Recover(ctx); err != nil {
		t.Fatal(err)
	}
	// The monitor may have run a Recover of its own meanwhile, so at least one.
	if got := logs.count(`"after":"recovery"`); got < 1 {
		t.Fatalf("no warning after recovery once the quiet time passed\n%s", logs.String())
	}
}

// warnLog collects WARN lines of this package's logger.
type warnLog struct {
	mu   sync.Mutex
	buf  strings.Builder
	done chan struct{}
}

func (w *warnLog) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.String()
}

func (w *warnLog) count(s string) int { return strings.Count(w.String(), s) }

func captureWarnings(t *testing.T) *warnLog {
	t.Helper()
	if err := logging.SetLogLevel("resilience/resilientdht", "warn"); err != nil {
		t.Fatal(err)
	}
	r := logging.NewPipeReader(logging.PipeLevel(logging.LevelWarn))
	w := &warnLog{done: make(chan struct{})}
	go func() {
		defer close(w.done)
		b := make([]byte, 4096)
		for {
			k, err := r.Read(b)
			w.mu.Lock()
			w.buf.Write(b[:k])
			w.mu.Unlock()
			if err != nil {
				return
			}
		}
	}()
	t.Cleanup(func() {
		r.Close()
		<-w.done
		logging.SetLogLevel("resilience/resilientdht", "error")
	})
	return w
}
