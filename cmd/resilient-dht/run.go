package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"syscall"
	"time"

	logging "github.com/ipfs/go-log/v2"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/chiral-network/go-libp2p-resilience/dialer"
	"github.com/chiral-network/go-libp2p-resilience/healthmon"
	"github.com/chiral-network/go-libp2p-resilience/internal/identity"
)

var log = logging.Logger("resilient-dht")

// shutdownTimeout bounds the graceful shutdown after SIGINT/SIGTERM.
const shutdownTimeout = 5 * time.Second

func cmdRun(args []string, stdout, stderr io.Writer) error {
	fset := flag.NewFlagSet("run", flag.ContinueOnError)
	var f runFlags
	f.define(fset)
	if err := parseFlags(fset, args, stderr); err != nil {
		return err
	}
	cfg, err := f.load(fset)
	if err != nil {
		return usageError{err}
	}
	if err := logging.SetLogLevelRegex("resilien.*", cfg.LogLevel); err != nil {
		return badInput("--log-level %q: %v", cfg.LogLevel, err)
	}
	// Bind the HTTP port and check the listen ports first and create files
	// last, so that bad input is reported before anything is written.
	var httpLn net.Listener
	if cfg.HTTP != "" {
		if httpLn, err = net.Listen("tcp", cfg.HTTP); err != nil {
			return badInput("--http %s: %v", cfg.HTTP, unwrapSyscall(err))
		}
		defer httpLn.Close()
		if !isLoopbackListener(httpLn) {
			log.Warnw("the HTTP endpoint (/metrics, /healthz, /status) is reachable from other machines; use --http 127.0.0.1:PORT to keep it local",
				"http", cfg.HTTP, "bound", httpLn.Addr().String())
		}
	}
	if err := checkPortsFree(cfg.listenAddrs); err != nil {
		return err
	}
	if err := checkDataDir(cfg.DataDir); err != nil {
		return usageError{err}
	}
	key, err := identity.LoadOrCreate(cfg.Identity)
	if err != nil {
		return usageError{fmt.Errorf("--identity: %w", err)}
	}

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()

	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	n, err := newNode(nodeConfig{
		key:            key,
		listen:         cfg.listenAddrs,
		bootstrapPeers: cfg.bootstrapPeers,
		mode:           parseMode(cfg.Mode),
		dhtKind:        cfg.DHT,
		loopbackOnLan:  cfg.LoopbackOnLanDHT,
		minPeers:       cfg.MinPeers,
		connsLow:       cfg.ConnsLow,
		connsHigh:      cfg.ConnsHigh,
		bootstrapCfg:   cfg.bootstrapCfg,
		peerCfg:        cfg.peerCfg,
		tolerateListen: cfg.defaultListen,
		backupFile:     backupPath(cfg.DataDir),
		registry:       reg,
	})
	if err != nil {
		return err
	}
	// Until shutdown starts, returning closes the node; after that, the shutdown
	// goroutine alone does (bounded by shutdownTimeout).
	shuttingDown := false
	defer func() {
		if !shuttingDown {
			n.Close()
		}
	}()

	fmt.Fprintf(stdout, "peer id %s\n", n.host.ID())
	for _, a := range n.host.Addrs() {
		fmt.Fprintf(stdout, "listening on %s/p2p/%s\n", a, n.host.ID())
	}

	var srv *httpServer
	if httpLn != nil {
		srv = serveHTTP(httpLn, reg, n.mon.IsHealthy, n.status)
		fmt.Fprintf(stdout, "http on http://%s (/metrics /healthz /status)\n", srv.Addr())
	}

	// The startup bootstrap runs inside the node (resilientdht.New); a failure
	// is not fatal: the monitor keeps probing until the network lets the node
	// in, and the node logs a warning when it cannot join.

	lineDone := make(chan struct{})
	if isTerminal(os.Stderr) {
		go func() {
			defer close(lineDone)
			statusLine(ctx, os.Stderr, n)
		}()
	} else {
		close(lineDone)
	}

	<-ctx.Done()
	stop() // a second signal kills the process
	fmt.Fprintln(stdout, "shutting down")
	sctx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
	defer cancel()
	shuttingDown = true
	done := make(chan struct{})
	go func() {
		defer close(done)
		<-lineDone
		if srv != nil {
			srv.Close(sctx)
		}
		if err := n.Close(); err != nil { // saves backup peers
			log.Warnw("shutdown", "err", err)
		}
	}()
	select {
	case <-done:
		return nil
	case <-sctx.Done():
		return errors.New("shutdown took longer than 5s")
	}
}

// status builds the /status document.
func (n *node) status() statusDoc {
	rep := n.mon.LastReport()
	counts, table := trackerTable(n.host.Manager())
	doc := statusDoc{
		PeerID:        n.host.ID().String(),
		Healthy:       rep.IsHealthy,
		Status:        rep.Status.String(),
		Health:        healthDocOf(rep),
		RoutingTables: n.Tables(),
		Connections:   len(n.host.Network().Peers()),
		Trackers:      counts,
		TrackerTable:  table,
	}
	for _, a := range n.host.Addrs() {
		doc.Addrs = append(doc.Addrs, a.String())
	}
	return doc
}

// healthDoc is a HealthReport with JSON names.
type healthDoc struct {
	Status                string    `json:"status"`
	Observed              string    `json:"observed"`
	IsHealthy             bool      `json:"is_healthy"`
	RoutingTableSize      int       `json:"routing_table_size"`
	TablePeersConnected   int       `json:"table_peers_connected"`
	ConnectedPeers        int       `json:"connected_peers"`
	MinPeersThreshold     int       `json:"min_peers_threshold"`
	FailedConnections     int       `json:"failed_connections"`
	RecoveringConnections int       `json:"recovering_connections"`
	Timestamp             time.Time `json:"timestamp"`
}

func healthDocOf(r healthmon.HealthReport) healthDoc {
	return healthDoc{
		Status: r.Status.String(), Observed: r.Observed.String(), IsHealthy: r.IsHealthy,
		RoutingTableSize: r.RoutingTableSize, TablePeersConnected: r.TablePeersConnected,
		ConnectedPeers: r.ConnectedPeers, MinPeersThreshold: r.MinPeersThreshold,
		FailedConnections: r.FailedConnections, RecoveringConnections: r.RecoveringConnections,
		Timestamp: r.Timestamp,
	}
}

func isTerminal(f *os.File) bool {
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

// statusLine keeps one live line on w: peers, tables, health, and when the next
// retry of a dial is due (from the dialer's EvtConnectRetry events).
func statusLine(ctx context.Context, w io.Writer, n *node) {
	sub, err := n.host.EventBus().Subscribe(new(dialer.EvtConnectRetry))
	if err != nil {
		log.Warnw("status line without retry times", "err", err)
	} else {
		defer sub.Close()
	}
	var retries <-chan any
	if sub != nil {
		retries = sub.Out()
	}
	t := time.NewTicker(time.Second)
	defer t.Stop()
	defer fmt.Fprint(w, "\r\033[K")
	var nextAt time.Time
	for {
		rep := n.mon.LastReport()
		st := n.host.Manager().Stats()
		line := fmt.Sprintf("peers %d  tables %v  health %s  retrying %d  exhausted %d",
			len(n.host.Network().Peers()), n.Tables(), rep.Status, st.Retrying, st.Exhausted)
		if d := time.Until(nextAt); d > 0 {
			line += fmt.Sprintf("  next retry in %v", d.Round(100*time.Millisecond))
		}
		fmt.Fprintf(w, "\r\033[K%s", line)
		select {
		case <-ctx.Done():
			return
		case e := <-retries:
			if ev, ok := e.(dialer.EvtConnectRetry); ok {
				at := time.Now().Add(ev.Delay)
				if time.Until(nextAt) <= 0 || at.Before(nextAt) {
					nextAt = at
				}
			}
			continue
		case <-t.C:
		}
	}
}
