package integration_test

import (
	"fmt"
	"math/rand/v2"
	"os"
	"strconv"
	"testing"
	"time"

	dht "github.com/libp2p/go-libp2p-kad-dht"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/chiral-network/go-libp2p-resilience/healthmon"
	"github.com/chiral-network/go-libp2p-resilience/internal/testnet"
	"github.com/chiral-network/go-libp2p-resilience/resilience"
	"github.com/chiral-network/go-libp2p-resilience/resilientdht"
)

func long(t *testing.T) {
	if os.Getenv("RESILIENCE_LONG") != "1" {
		t.Skip("long scenario: set RESILIENCE_LONG=1 to run it")
	}
}

// stack is the module's whole stack on one testnet node, built by
// resilientdht.New on the node's host and DHT, and rebuilt on every restart of
// the node.
type stack struct {
	node *testnet.Node
	n    *resilientdht.Node
}

func (s *stack) build(t *testing.T, bootPeers []peer.AddrInfo, backup string) {
	t.Helper()
	cfg := resilience.ForDHTBootstrap()
	cfg.InitialDelay, cfg.MaxDelay = 500*time.Millisecond, 5*time.Second
	n, err := resilientdht.New(s.node.Host(), resilientdht.WithIpfsDHT(s.node.DHT()),
		resilientdht.WithBootstrapPeers(bootPeers...), resilientdht.WithBootstrapRetry(cfg),
		resilientdht.WithBackupFile(backup),
		resilientdht.WithHealthOptions(healthmon.WithNetWatch(false), healthmon.WithCheckInterval(2*time.Second)))
	if err != nil {
		t.Fatal(err)
	}
	s.n = n
}

// teardown closes the stack: the monitor, the bootstrapper, the DHT and the
// node's host. testnet's Stop, which the caller or the test's cleanup runs,
// closes the DHT and the host again (no-ops).
func (s *stack) teardown() {
	if s.n != nil {
		s.n.Close()
		s.n = nil
	}
}

// TestChaos runs 16 nodes (3 bootstrap nodes) through two minutes of random
// faults — nodes cut off, bootstrap nodes killed and restarted with the same
// key and port — then ends every fault and requires every node to be healthy
// again within a minute, with no help from the test.
func TestChaos(t *testing.T) {
	long(t)
	seed := testSeed(t) // read first: a bad RESILIENCE_SEED fails before the network starts
	t.Logf("chaos seed %d (replay: RESILIENCE_SEED=%d)", seed, seed)
	const n, nBoot = 16, 3
	nodes := testnet.NewNetwork(t, n, testnet.WithDHT(dht.ModeServer))
	var bootPeers []peer.AddrInfo
	for _, nd := range nodes[:nBoot] {
		bootPeers = append(bootPeers, nd.AddrInfo())
	}
	dir := t.TempDir()
	stacks := make([]*stack, n)
	for i, nd := range nodes {
		stacks[i] = &stack{node: nd}
		stacks[i].build(t, without(bootPeers, nd.ID()), fmt.Sprintf("%s/backup-%d.json", dir, i))
	}
	t.Cleanup(func() {
		for _, s := range stacks {
			s.teardown()
			s.node.Stop()
		}
	})
	waitAllHealthy(t, stacks, time.Minute) // New runs the startup bootstrap itself

	rng := rand.New(rand.NewPCG(1, seed))
	end := time.Now().Add(2 * time.Minute)
	isolated := map[int]bool{}
	for time.Now().Before(end) {
		i := rng.IntN(n)
		s := stacks[i]
		switch {
		case i < nBoot && s.node.Running() && rng.IntN(2) == 0:
			t.Logf("kill bootstrap node %d", i)
			s.teardown()
			s.node.Stop()
		case i < nBoot && !s.node.Running():
			t.Logf("restart bootstrap node %d", i)
			s.node.Start()
			s.build(t, without(bootPeers, s.node.ID()), fmt.Sprintf("%s/backup-%d.json", dir, i))
		case isolated[i]:
			t.Logf("rejoin node %d", i)
			s.node.Rejoin()
			delete(isolated, i)
		case len(isolated) < 3:
			t.Logf("isolate node %d", i)
			s.node.Isolate()
			isolated[i] = true
		}
		time.Sleep(time.Duration(2+rng.IntN(6)) * time.Second)
	}
	t.Log("faults end")
	for i, s := range stacks {
		if !s.node.Running() {
			s.node.Start()
			s.build(t, without(bootPeers, s.node.ID()), fmt.Sprintf("%s/backup-%d.json", dir, i))
		}
		s.node.Rejoin()
	}
	start := time.Now()
	waitAllHealthy(t, stacks, time.Minute)
	t.Logf("all %d nodes healthy %v after the faults ended", n, time.Since(start).Round(100*time.Millisecond))
}

// testSeed is RESILIENCE_SEED if set, else a seed drawn from the clock. The
// seed fixes which faults hit which nodes and the pauses between them, so a
// failing run can be replayed with the same fault sequence; the network's own
// timing (real time, real sockets) still varies from run to run.
func testSeed(t *testing.T) uint64 {
	t.Helper()
	v := os.Getenv("RESILIENCE_SEED")
	if v == "" {
		return uint64(time.Now().UnixNano())
	}
	seed, err := strconv.ParseUint(v, 10, 64)
	if err != nil {
		t.Fatalf("RESILIENCE_SEED=%q: want an unsigned decimal integer: %v", v, err)
	}
	return seed
}

func without(peers []peer.AddrInfo, id peer.ID) []peer.AddrInfo {
	var out []peer.AddrInfo
	for _, p := range peers {
		if p.ID != id {
			out = append(out, p)
		}
	}
	return out
}

func waitAllHealthy(t *testing.T, stacks []*stack, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		var sick []int
		for i, s := range stacks {
			if s.n == nil || !s.n.IsHealthy() {
				sick = append(sick, i)
			}
		}
		if len(sick) == 0 {
			return
		}
		if time.Now().After(deadline) {
			for _, i := range sick {
				if s := stacks[i]; s.n != nil {
					t.Logf("node %d: %+v", i, s.n.Monitor().LastReport())
				}
			}
			t.Fatalf("nodes %v not healthy after %v", sick, timeout)
		}
		time.Sleep(200 * time.Millisecond)
	}
}
