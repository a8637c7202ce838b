package bootstrap

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/chiral-network/go-libp2p-resilience/dialer"
	"github.com/chiral-network/go-libp2p-resilience/internal/textutil"
	"github.com/chiral-network/go-libp2p-resilience/resilience"
)

const (
	// tablePoll is how often the routing-table size is checked while
	// waiting for it.
	tablePoll = 100 * time.Millisecond
	// tableJoinWait is how long a refresh waits for the first connected
	// peer to enter the routing table (kad-dht adds it once identify has
	// confirmed the DHT protocol); after that the refresh starts anyway.
	tableJoinWait = 2 * time.Second
)

// Result is what Bootstrap found.
type Result struct {
	// Connected lists the peers that are connected: configured bootstrap
	// peers first, then backup peers, each group in configured order.
	Connected []PeerResult
	// Failed lists the peers that could not be reached, in the same order.
	// Backup peers appear in either list only when they were dialled.
	Failed []PeerResult
	// TableSize is the routing table's size when Bootstrap returned.
	TableSize int
}

// PeerResult is the outcome of dialling one peer.
type PeerResult struct {
	// ID is the peer.
	ID peer.ID
	// Backup is true for a backup peer (saved by an earlier run), false for
	// a configured bootstrap peer.
	Backup bool
	// Attempts counts the dials recorded in the peer's tracker while the
	// call waited for it; 0 when the peer was already connected, or when
	// the call's ctx ended before its turn came.
	Attempts uint32
	// Err is nil for a connected peer. For a failed one it is the dialer's
	// error: matching resilience.ErrExhausted and the last dial error when
	// every attempt failed, marked resilience.Permanent when no retry could
	// help (wrong peer ID, no usable address, ...), or the ctx's cause
	// (joined with the last dial error) when the call was cut short.
	Err error
}

// target is one peer to dial.
type target struct {
	pi     peer.AddrInfo
	backup bool
	order  int // position in the Result: bootstrap peers first
}

// outcome is the result of dialling one target.
type outcome struct {
	target
	attempts uint32
	err      error
}

// Bootstrap joins the DHT:
//
//  1. It dials every bootstrap peer concurrently, each a retry round of
//     the dialer's scheduler (dialer.Host.Dial) with the retry profile
//     (WithRetryConfig; default resilience.ForDHTBootstrap) at bootstrap
//     priority: the scheduler admits each dial through the dialer's one
//     dial gate, gives peers left Failed or Exhausted by earlier rounds a
//     whole new round, and reports how many dials the round made. A round
//     of the peer already waiting out its backoff is joined and dials at
//     once.
//  2. Each connected bootstrap peer is protected in the host's connection
//     manager under ProtectTag ("bootstrap").
//  3. As soon as a bootstrap peer's round fails, or the profile's
//     InitialDelay has passed with a bootstrap peer still unconnected, the
//     backup peers are dialled the same way (not protected). With no
//     bootstrap peers configured they are dialled at once.
//  4. With the first connection it triggers a routing-table refresh, and
//     another after later connections while fewer than WithMinPeers
//     routing-table peers are connected (the health monitor's measure).
//
// It returns when every round has ended (connected or given up) and the
// table holds at least MinPeers peers or the last refresh has ended — or
// when ctx ends, with what is known by then. Dials and refreshes are
// bounded by ctx; with the default profile a peer that stays unreachable
// takes about 30 s (5 attempts) to give up.
//
// The error is nil when at least one peer was reached, even if the table
// stays below MinPeers (Result.TableSize says how far it got). When no
// peer could be reached it is ErrNoBootstrapPeers joined with each peer's
// cause. A ctx that has already ended yields its cause, and after Close
// the error is ErrClosed.
func (b *Bootstrapper) Bootstrap(ctx context.Context) (Result, error) {
	return b.run(ctx, "Bootstrap", false)
}

// Recover is the recovery hook of package healthmon (its Recoverer, with
// Probe): it dials bootstrap and backup peers at once, concurrently, with
// the retry profile (Exhausted and Failed peers get a new round; rounds
// waiting out their backoff dial now), protects the connected bootstrap
// peers and refreshes the routing table, waiting as Bootstrap does —
// except that once a peer was reached and MinPeers routing-table peers are
// connected (the monitor's measure of health), its job is done: it ends the retry rounds
// still running (peers still unreachable, typically stale backup peers,
// would otherwise keep it waiting for their whole rounds) and returns. It
// returns nil when at least one peer was reached, ErrNoBootstrapPeers
// joined with each peer's cause otherwise, and ErrClosed after Close.
func (b *Bootstrapper) Recover(ctx context.Context) error {
	_, err := b.run(ctx, "Recover", true)
	return err
}

// run implements Bootstrap (recovering false) and Recover (true).
func (b *Bootstrapper) run(ctx context.Context, op string, recovering bool) (Result, error) {
	ctx, done, err := b.begin(ctx)
	if err != nil {
		return Result{}, err
	}
	defer done()
	start := time.Now()

	b.mu.Lock()
	backup := b.backup
	b.mu.Unlock()
	boots := make([]target, len(b.peers))
	for i, pi := range b.peers {
		boots[i] = target{pi: pi, order: i}
	}
	backups := make([]target, len(backup))
	for i, pi := range backup {
		backups[i] = target{pi: pi, backup: true, order: len(boots) + i}
	}
	if len(boots)+len(backups) == 0 {
		return Result{TableSize: len(b.rt.ListPeers())},
			fmt.Errorf("bootstrap: %s: %w: no bootstrap peers configured and no backup peers", op, ErrNoBootstrapPeers)
	}

	outcomes := make(chan outcome, len(boots)+len(backups))
	var wg sync.WaitGroup
	defer wg.Wait()
	// Recover ends the rounds still running once its job is done.
	dialCtx, stopDials := context.WithCancelCause(ctx)
	defer stopDials(nil)
	dialsStopped := false
	roundsLeft := 0
	launch := func(ts []target) {
		for _, t := range ts {
			roundsLeft++
			wg.Add(1)
			go func() {
				defer wg.Done()
				outcomes <- b.dial(dialCtx, t)
			}()
		}
	}

	launch(boots)
	backupsStarted := false
	startBackups := func(why string) {
		if backupsStarted || len(backups) == 0 {
			return
		}
		backupsStarted = true
		logger.Debugw("dialling backup peers", "op", op, "count", len(backups), "why", why)
		launch(backups)
	}
	var backupTimer <-chan time.Time
	switch {
	case recovering:
		startBackups("recover")
	case len(boots) == 0:
		startBackups("no bootstrap peers configured")
	case len(backups) > 0:
		t := time.NewTimer(b.cfg.retry.InitialDelay)
		defer t.Stop()
		backupTimer = t.C
	}

	ticker := time.NewTicker(tablePoll)
	defer ticker.Stop()
	var (
		results      []outcome
		bootsUp      int
		refreshCh    <-chan error
		refreshes    int
		pending      bool // a peer connected since the last refresh started
		lastConn     time.Time
		ctxDone      = ctx.Done()
		minPeers     = b.cfg.minPeers
		anyConnected bool
	)
	record := func(o outcome) {
		roundsLeft--
		results = append(results, o)
		if o.err != nil {
			logger.Debugw("peer not reached", "op", op, "peer", o.pi.ID, "backup", o.backup, "attempts", o.attempts, "err", o.err)
			return
		}
		logger.Debugw("peer connected", "op", op, "peer", o.pi.ID, "backup", o.backup, "attempts", o.attempts)
		anyConnected, pending, lastConn = true, true, time.Now()
		if !o.backup {
			bootsUp++
			b.protect(o.pi.ID)
		}
	}
	for {
		size := len(b.rt.ListPeers())
		healthy := b.connectedTablePeers()
		if recovering && !dialsStopped && anyConnected && healthy >= minPeers {
			dialsStopped = true
			if roundsLeft > 0 {
				logger.Debugw("MinPeers routing-table peers connected; ending the remaining rounds", "op", op, "connected", healthy, "rounds_left", roundsLeft)
			}
			stopDials(errRecovered)
		}
		if ctxDone != nil && pending && refreshCh == nil && (size > 0 || time.Since(lastConn) >= tableJoinWait) {
			pending = false
			if refreshes == 0 || healthy < minPeers {
				refreshes++
				logger.Debugw("refreshing routing table", "op", op, "size", size)
				refreshCh = b.rt.RefreshRoutingTable()
			}
		}
		// Done with the table once a refresh has run and the table is full
		// (no further refresh would start), or when the last refresh ended
		// and no connection since asks for another.
		tableDone := refreshes > 0 && healthy >= minPeers || !pending && refreshCh == nil
		if roundsLeft == 0 && (ctxDone == nil || tableDone) {
			break
		}
		select {
		case o := <-outcomes:
			record(o)
			if o.err != nil && !o.backup && ctxDone != nil {
				startBackups("bootstrap peer failed")
			}
		case <-backupTimer:
			backupTimer = nil
			if bootsUp < len(boots) {
				startBackups("bootstrap peers not connected after the initial delay")
			}
		case err := <-refreshCh:
			refreshCh = nil
			logger.Debugw("routing table refresh ended", "op", op, "size", len(b.rt.ListPeers()), "err", textutil.ErrLine(err))
		case <-ticker.C:
		case <-ctxDone:
			// Rounds end promptly now; collect them and stop waiting for
			// the table.
			ctxDone, backupTimer = nil, nil
		}
	}

	res := Result{TableSize: len(b.rt.ListPeers())}
	slices.SortFunc(results, func(x, y outcome) int { return x.order - y.order })
	var causes []error
	for _, o := range results {
		pr := PeerResult{ID: o.pi.ID, Backup: o.backup, Attempts: o.attempts, Err: o.err}
		if o.err == nil {
			res.Connected = append(res.Connected, pr)
		} else {
			res.Failed = append(res.Failed, pr)
			causes = append(causes, fmt.Errorf("%s: %w", o.pi.ID, o.err))
		}
	}
	elapsed := time.Since(start)
	if !anyConnected {
		logger.Warnw("no bootstrap or backup peer reached", "op", op, "failed", len(res.Failed), "elapsed", elapsed)
		return res, fmt.Errorf("bootstrap: %s: %w: %w", op, ErrNoBootstrapPeers, errors.Join(causes...))
	}
	if res.TableSize == 0 {
		// Connected, yet nobody entered the table: the node has not joined.
		// Result.TableSize says so to the caller, which knows the DHT's
		// protocols and can name the cause (package resilientdht warns).
		logger.Infow("reached bootstrap or backup peers but the routing table is still empty", "op", op,
			"connected", len(res.Connected), "elapsed", elapsed)
	} else {
		logger.Infow("joined the DHT", "op", op, "connected", len(res.Connected), "failed", len(res.Failed),
			"table_size", res.TableSize, "table_connected", b.connectedTablePeers(), "min_peers", minPeers, "elapsed", elapsed)
	}
	b.requestSave()
	return res, nil
}

// dial runs one peer's retry round through the dialer's scheduler at
// bootstrap priority; a round of the peer already waiting out its backoff is
// joined and told to dial at once.
func (b *Bootstrapper) dial(ctx context.Context, t target) outcome {
	dials, err := b.h.Dial(ctx, t.pi, dialer.WithRoundConfig(b.cfg.retry),
		dialer.WithPriority(resilience.PriorityBootstrap), dialer.Immediately())
	return outcome{target: t, attempts: dials, err: err}
}

// connectedTablePeers is the monitor's measure of health: routing-table peers
// that are connected.
func (b *Bootstrapper) connectedTablePeers() int {
	n := 0
	nw := b.h.Network()
	for _, p := range b.rt.ListPeers() {
		if nw.Connectedness(p) == network.Connected {
			n++
		}
	}
	return n
}
