package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"text/tabwriter"
	"time"

	dht "github.com/libp2p/go-libp2p-kad-dht"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"
	manet "github.com/multiformats/go-multiaddr/net"

	"github.com/chiral-network/go-libp2p-resilience/dialer"
	"github.com/chiral-network/go-libp2p-resilience/healthmon"
	"github.com/chiral-network/go-libp2p-resilience/internal/identity"
	"github.com/chiral-network/go-libp2p-resilience/resilience"
)

// demoBootstrapNodes is how many of the demo's nodes serve as bootstrap nodes.
const demoBootstrapNodes = 3

// cmdDemo runs N DHT nodes on 127.0.0.1, lets them bootstrap, takes every
// bootstrap node down and cuts one node off, brings everything back and prints
// how the network recovered. It exits 0 only if it did.
func cmdDemo(args []string, stdout, stderr io.Writer) error {
	fset := flag.NewFlagSet("demo", flag.ContinueOnError)
	nodes := decimalIntFlag(fset, "nodes", 12, "`number` of nodes (3 of them bootstrap nodes); at least 8")
	outage := fset.Duration("duration", 15*time.Second, "how long the outage lasts")
	if err := parseFlags(fset, args, stderr); err != nil {
		return err
	}
	if *nodes < 8 || *nodes > 64 {
		return badInput("demo: --nodes %d: must be between 8 and 64", *nodes)
	}
	if *outage < time.Second || *outage > 10*time.Minute {
		return badInput("demo: --duration %v: must be between 1s and 10m", *outage)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	d := &demo{out: stdout, start: time.Now()}
	defer d.close()
	return d.run(ctx, *nodes, *outage)
}

type demo struct {
	out   io.Writer
	start time.Time
	mu    sync.Mutex // guards out
	nodes []*demoNode
	dir   string
	wg    sync.WaitGroup
	stop  context.CancelFunc
}

type demoNode struct {
	name       string
	key        crypto.PrivKey
	listen     ma.Multiaddr
	sw         *netSwitch
	bootstrap  bool
	recoveries atomic.Int64
	dials      atomic.Uint64 // attempts of earlier incarnations
	n          *node         // nil while stopped
}

// phaseResult is one row of the summary.
type phaseResult struct {
	name       string
	toHealthy  time.Duration // -1: never
	dials      uint64
	recoveries int64
}

func (d *demo) logf(format string, args ...any) {
	d.mu.Lock()
	defer d.mu.Unlock()
	fmt.Fprintf(d.out, "%6.1fs  "+format+"\n", append([]any{time.Since(d.start).Seconds()}, args...)...)
}

func (d *demo) run(ctx context.Context, count int, outage time.Duration) error {
	var err error
	if d.dir, err = os.MkdirTemp("", "resilient-dht-demo-*"); err != nil {
		return err
	}
	watchCtx, cancel := context.WithCancel(ctx)
	d.stop = cancel

	d.logf("starting %d DHT nodes on 127.0.0.1 (%d bootstrap nodes)", count, demoBootstrapNodes)
	for i := range count {
		key, err := identity.Generate()
		if err != nil {
			return err
		}
		name := fmt.Sprintf("node-%02d", i)
		if i < demoBootstrapNodes {
			name = fmt.Sprintf("boot-%d", i)
		}
		listen, err := freeLoopbackAddr()
		if err != nil {
			return err
		}
		d.nodes = append(d.nodes, &demoNode{name: name, key: key, listen: listen, sw: &netSwitch{}, bootstrap: i < demoBootstrapNodes})
	}
	var results []phaseResult

	// Phase 1: startup. Each node bootstraps as it starts (resilientdht.New);
	// bootstrap nodes first: the others need their addresses.
	res, err := d.phase(ctx, "startup", func() error {
		for _, dn := range d.nodes {
			if err := d.startNode(watchCtx, dn); err != nil {
				return err
			}
		}
		return nil
	}, 40*time.Second)
	results = append(results, res)
	if err != nil {
		d.summary(results)
		return err
	}
	for _, dn := range d.nodes {
		if err := dn.n.boot.SaveBackup(); err != nil {
			d.logf("%s: saving backup peers: %v", dn.name, err)
		}
	}

	// Phase 2: outage. Every bootstrap node goes down, one node loses its network.
	victim := d.nodes[len(d.nodes)-1]
	outageStart := time.Now()
	before := d.counters()
	for _, dn := range d.nodes[:demoBootstrapNodes] {
		d.stopNode(dn)
		d.logf("%s: stopped", dn.name)
	}
	victim.sw.cut(victim.n.host.Network())
	d.logf("%s: network cut (dials fail with 'network is unreachable', connections closed)", victim.name)
	if err := resilience.Sleep(ctx, outage); err != nil {
		return err
	}
	after := d.counters()
	results = append(results, phaseResult{name: fmt.Sprintf("outage (%v)", outage.Round(time.Second)), toHealthy: -1, dials: after.dials - before.dials, recoveries: after.recoveries - before.recoveries})
	d.logf("outage over after %v: %s has %d routing-table peers connected", time.Since(outageStart).Round(100*time.Millisecond), victim.name, victim.n.mon.LastReport().TablePeersConnected)

	// Phase 3: recovery.
	res, err = d.phase(ctx, "recovery", func() error {
		for _, dn := range d.nodes[:demoBootstrapNodes] {
			if err := d.startNode(watchCtx, dn); err != nil {
				d.logf("%s: restart failed: %v", dn.name, err)
				continue
			}
			d.logf("%s: restarted on %s with the same key", dn.name, dn.listen)
		}
		victim.sw.restore()
		d.logf("%s: network back", victim.name)
		return nil
	}, 40*time.Second)
	results = append(results, res)
	d.summary(results)
	if err != nil {
		return err
	}
	fmt.Fprintln(d.out, "\nthe network recovered")
	return nil
}

// phase runs action, then waits until every node is healthy (or timeout) and
// returns the phase's numbers.
func (d *demo) phase(ctx context.Context, name string, action func() error, timeout time.Duration) (phaseResult, error) {
	before := d.counters()
	start := time.Now()
	d.logf("--- %s ---", name)
	if err := action(); err != nil {
		return phaseResult{name: name, toHealthy: -1}, err
	}
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		if d.allHealthy() {
			elapsed := time.Since(start)
			after := d.counters()
			d.logf("all %d nodes healthy after %v", len(d.nodes), elapsed.Round(100*time.Millisecond))
			return phaseResult{name: name, toHealthy: elapsed, dials: after.dials - before.dials, recoveries: after.recoveries - before.recoveries}, nil
		}
		select {
		case <-ctx.Done():
			return phaseResult{name: name, toHealthy: -1}, context.Cause(ctx)
		case <-deadline.C:
			after := d.counters()
			return phaseResult{name: name, toHealthy: -1, dials: after.dials - before.dials, recoveries: after.recoveries - before.recoveries},
				fmt.Errorf("%s: not every node healthy after %v", name, timeout)
		case <-tick.C:
		}
	}
}

func (d *demo) allHealthy() bool {
	for _, dn := range d.nodes {
		if dn.n == nil || !dn.n.mon.IsHealthy() {
			return false
		}
	}
	return true
}

type counters struct {
	dials      uint64
	recoveries int64
}

func (d *demo) counters() counters {
	var c counters
	for _, dn := range d.nodes {
		c.dials += dn.dials.Load()
		if dn.n != nil {
			c.dials += dn.n.host.Manager().Stats().TotalAttempts
		}
		c.recoveries += dn.recoveries.Load()
	}
	return c
}

func (d *demo) bootstrapInfos(except *demoNode) []peer.AddrInfo {
	var out []peer.AddrInfo
	for _, dn := range d.nodes[:demoBootstrapNodes] {
		if dn != except {
			id, _ := peer.IDFromPrivateKey(dn.key)
			out = append(out, peer.AddrInfo{ID: id, Addrs: []ma.Multiaddr{dn.listen}})
		}
	}
	return out
}

// startNode (re)starts dn on its address with its key, and prints its health
// changes and its dialer's retries.
func (d *demo) startNode(ctx context.Context, dn *demoNode) error {
	n, err := newNode(nodeConfig{
		key:            dn.key,
		listen:         []ma.Multiaddr{dn.listen},
		bootstrapPeers: d.bootstrapInfos(dn),
		mode:           dht.ModeServer,
		dhtKind:        "plain",
		minPeers:       4,
		bootstrapCfg:   demoProfile(),
		peerCfg:        resilience.ForDHTPeer(),
		backupFile:     fmt.Sprintf("%s/%s-backup.json", d.dir, dn.name),
		hostOptions:    dn.sw.options(),
		healthOptions: []healthmon.Option{
			healthmon.WithNetWatch(false),
			healthmon.WithCheckInterval(time.Second),
			healthmon.WithMetricsTracer(recoveryCounter{&dn.recoveries}),
		},
	})
	if err != nil {
		return fmt.Errorf("%s: %w", dn.name, err)
	}
	dn.n = n
	reports := n.mon.Subscribe()
	retries, err := n.host.EventBus().Subscribe(new(dialer.EvtConnectRetry))
	if err != nil {
		return err
	}
	d.wg.Go(func() {
		defer retries.Close()
		last := healthmon.StatusUnknown
		for {
			select {
			case <-ctx.Done():
				return
			case r, ok := <-reports:
				if !ok {
					return
				}
				if r.Status != last {
					d.logf("%s: %s (%d routing-table peers connected, table %d)", dn.name, r.Status, r.TablePeersConnected, r.RoutingTableSize)
					last = r.Status
				}
			case e, ok := <-retries.Out():
				if !ok {
					return
				}
				if ev, ok := e.(dialer.EvtConnectRetry); ok {
					d.logf("%s: dial to %s failed (attempt %d), next in %v", dn.name, shortID(ev.Peer.String()), ev.Attempt, ev.Delay.Round(100*time.Millisecond))
				}
			}
		}
	})
	return nil
}

func (d *demo) stopNode(dn *demoNode) {
	if dn.n == nil {
		return
	}
	dn.dials.Add(dn.n.host.Manager().Stats().TotalAttempts)
	dn.n.Close()
	dn.n = nil
}

func (d *demo) close() {
	if d.stop != nil {
		d.stop() // the watchers first: nothing is printed after the summary
	}
	d.wg.Wait()
	for _, dn := range d.nodes {
		d.stopNode(dn)
	}
	if d.dir != "" {
		os.RemoveAll(d.dir)
	}
}

func (d *demo) summary(results []phaseResult) {
	d.mu.Lock()
	defer d.mu.Unlock()
	fmt.Fprintln(d.out)
	tw := tabwriter.NewWriter(d.out, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "PHASE\tTIME TO HEALTHY\tDIAL ATTEMPTS\tRECOVERIES")
	for _, r := range results {
		t := "-"
		if r.toHealthy >= 0 {
			t = r.toHealthy.Round(100 * time.Millisecond).String()
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%d\n", r.name, t, r.dials, r.recoveries)
	}
	tw.Flush()
}

// demoProfile is ForDHTBootstrap with shorter delays, so the demo fits in a minute.
func demoProfile() resilience.RetryConfig {
	c := resilience.ForDHTBootstrap()
	c.InitialDelay, c.MaxDelay = 500*time.Millisecond, 5*time.Second
	return c
}

// recoveryCounter counts the monitor's recoveries.
type recoveryCounter struct{ n *atomic.Int64 }

func (r recoveryCounter) CheckCompleted(healthmon.Status, int) {}
func (r recoveryCounter) StatusChanged(_, _ healthmon.Status)  {}
func (r recoveryCounter) ProbeCompleted(bool)                  {}
func (r recoveryCounter) RecoveryStarted(healthmon.Trigger)    { r.n.Add(1) }
func (r recoveryCounter) RecoveryCompleted(bool)               {}

// freeLoopbackAddr returns a TCP address on 127.0.0.1 that was free a moment ago,
// so that bootstrap nodes have fixed addresses before they start (and after a
// restart).
func freeLoopbackAddr() (ma.Multiaddr, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	defer l.Close()
	return manet.FromNetAddr(l.Addr())
}

func firstLine(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i]
	}
	return s
}
