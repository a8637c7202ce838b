package bootstrap

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"

	"github.com/chiral-network/go-libp2p-resilience/dialer"
)

// Bootstrapper joins a host to a Kademlia DHT through its bootstrap peers,
// falls back to the backup peers saved by earlier runs, and rejoins after
// outages (Probe and Recover, the recovery hooks of package healthmon).
//
// New starts a goroutine that saves the backup peers (with
// WithBackupFile); Close stops it. A Bootstrapper is safe for concurrent
// use: Bootstrap, Recover and Probe may run at the same time (the dialer
// shares one retry round per peer between them).
type Bootstrapper struct {
	h       *dialer.Host
	rt      RoutingTable
	cfg     config
	peers   []peer.AddrInfo      // configured bootstrap peers without self; read-only
	exclude map[peer.ID]struct{} // bootstrap peers and self, never backup peers; read-only

	probeNext atomic.Uint64 // rotation over Probe candidates
	saveKick  chan struct{} // asks the save loop for a save; capacity 1
	saveMu    sync.Mutex    // serializes SaveBackup

	ctx    context.Context // ends with Close
	cancel context.CancelCauseFunc
	wg     sync.WaitGroup // save loop and running calls

	mu        sync.Mutex // guards the fields below; never held across I/O
	closed    bool
	backup    []peer.AddrInfo // replaced, never modified in place
	loadErr   error
	protected map[peer.ID]struct{}

	closeOnce sync.Once
	closeErr  error
}

// New returns a Bootstrapper for the host h (whose retrying connect it
// dials with) and the routing table rt of h's DHT (see DHT), with the
// bootstrap peers peers, for example from ParseAddrs.
//
// Every peer needs a valid ID and at least one address; an entry for h
// itself is skipped (a list shared by all nodes of a network may name
// them all), and several entries of one peer are merged. An empty list is
// allowed: such a node (the first of its network) can only use backup
// peers, and Bootstrap fails with ErrNoBootstrapPeers while it has none.
// The peers are registered with h.AddBootstrapPeers so that every
// reconnect to them uses the dialer's bootstrap profile.
//
// With WithBackupFile, the backup peers saved by an earlier run are
// loaded; a missing file means none, and an unreadable or corrupt file is
// logged as a warning, reported by BackupLoadErr and otherwise ignored
// (it stays as it is until a successful save replaces it).
//
// Bad arguments and options return an error naming them. Call Close when
// done; it does not close h.
func New(h *dialer.Host, rt RoutingTable, peers []peer.AddrInfo, opts ...Option) (*Bootstrapper, error) {
	if h == nil {
		return nil, errors.New("bootstrap: New: h must not be nil")
	}
	if rt == nil {
		return nil, errors.New("bootstrap: New: rt must not be nil")
	}
	cfg := defaultConfig()
	for i, o := range opts {
		if o == nil {
			return nil, fmt.Errorf("bootstrap: New: opts[%d] is nil", i)
		}
		if err := o(&cfg); err != nil {
			return nil, err
		}
	}
	self := h.ID()
	var m addrMerger
	for i, pi := range peers {
		if err := checkPeer(pi); err != nil {
			return nil, fmt.Errorf("bootstrap: New: peers[%d]: %w", i, err)
		}
		if pi.ID == self {
			logger.Debugw("skipping own peer ID in the bootstrap peers", "peer", self)
			continue
		}
		m.add(pi.ID, pi.Addrs...)
	}
	exclude := make(map[peer.ID]struct{}, len(m.infos)+1)
	exclude[self] = struct{}{}
	ids := make([]peer.ID, 0, len(m.infos))
	for _, pi := range m.infos {
		exclude[pi.ID] = struct{}{}
		ids = append(ids, pi.ID)
	}

	ctx, cancel := context.WithCancelCause(context.Background())
	b := &Bootstrapper{
		h:         h,
		rt:        rt,
		cfg:       cfg,
		peers:     m.infos,
		exclude:   exclude,
		saveKick:  make(chan struct{}, 1),
		ctx:       ctx,
		cancel:    cancel,
		protected: make(map[peer.ID]struct{}),
	}
	if cfg.backupFile != "" {
		loaded, err := loadBackup(cfg.backupFile)
		if err != nil {
			logger.Warnw("ignoring unusable backup peers file; it is kept until a successful save replaces it",
				"path", cfg.backupFile, "err", err)
			b.loadErr = err
		}
		for _, pi := range loaded {
			if _, skip := exclude[pi.ID]; !skip {
				b.backup = append(b.backup, pi)
			}
		}
		logger.Debugw("backup peers loaded", "path", cfg.backupFile, "count", len(b.backup))
	}
	h.AddBootstrapPeers(ids...)
	if cfg.backupFile != "" {
		b.wg.Add(1)
		go b.saveLoop()
	}
	return b, nil
}

// checkPeer validates one configured bootstrap peer.
func checkPeer(pi peer.AddrInfo) error {
	if pi.ID == "" {
		return peer.ErrEmptyPeerID
	}
	if id, err := decodePeerID(pi.ID.String()); err != nil || id != pi.ID {
		return fmt.Errorf("bad peer id %q: not a multihash", string(pi.ID))
	}
	if len(pi.Addrs) == 0 {
		return fmt.Errorf("%s: no addresses", pi.ID)
	}
	for j, a := range pi.Addrs {
		if len(a) == 0 {
			return fmt.Errorf("%s: addrs[%d] is empty", pi.ID, j)
		}
	}
	return nil
}

// Peers returns the configured bootstrap peers (without the host itself),
// as a fresh slice.
func (b *Bootstrapper) Peers() []peer.AddrInfo { return cloneInfos(b.peers) }

// BackupPeers returns the current backup peers, as a fresh slice: those
// loaded by New, replaced by each save that found peers to save (see
// SaveBackup). They are replaced before the file is written, so a file
// written by a save is never newer than what BackupPeers returns.
func (b *Bootstrapper) BackupPeers() []peer.AddrInfo {
	b.mu.Lock()
	defer b.mu.Unlock()
	return cloneInfos(b.backup)
}

// BackupLoadErr returns the error New met loading the backup file (it
// wraps ErrCorruptBackup when the content was unusable), or nil when the
// file was loaded, was missing, or no backup file is configured.
func (b *Bootstrapper) BackupLoadErr() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.loadErr
}

// Probe makes one cheap reachability check for a health monitor: a single
// dial (dialer.Host.ConnectOnce, no retries) to the next candidate in a
// rotation over the bootstrap peers followed by the backup peers, so that
// successive calls spread over all of them. Evidence that the network works
// is a new connection, so a candidate that is already connected is skipped —
// unless it has been connected for longer than 2 s without entering the
// routing table (identify failed, or its DHT protocol was never confirmed):
// such a connection is closed and the peer redialled, which repairs it. It
// returns nil when the dial succeeded (a connected bootstrap peer is then
// protected), the dial error naming the peer otherwise, ErrAllConnected when
// every candidate is connected and none needs repair, ErrNoBootstrapPeers
// when there is no candidate at all, and ErrClosed after Close. Concurrent
// calls each take the next candidate.
func (b *Bootstrapper) Probe(ctx context.Context) error {
	ctx, done, err := b.begin(ctx)
	if err != nil {
		return err
	}
	defer done()
	b.mu.Lock()
	backup := b.backup
	b.mu.Unlock()
	n := uint64(len(b.peers) + len(backup))
	if n == 0 {
		return fmt.Errorf("bootstrap: probe: %w: no bootstrap or backup peers", ErrNoBootstrapPeers)
	}
	var inTable map[peer.ID]struct{} // read once, when first needed
	nw := b.h.Network()
	for tries := uint64(0); tries < n; tries++ {
		i := (b.probeNext.Add(1) - 1) % n
		var pi peer.AddrInfo
		isBootstrap := i < uint64(len(b.peers))
		if isBootstrap {
			pi = b.peers[i]
		} else {
			pi = backup[i-uint64(len(b.peers))]
		}
		if nw.Connectedness(pi.ID) == network.Connected {
			if inTable == nil {
				inTable = make(map[peer.ID]struct{})
				for _, p := range b.rt.ListPeers() {
					inTable[p] = struct{}{}
				}
			}
			if _, ok := inTable[pi.ID]; ok || !connectedLongerThan(nw, pi.ID, tableJoinWait) {
				continue // no evidence to be had from it
			}
			logger.Warnw("peer connected but not in the routing table; closing and redialling it",
				"peer", pi.ID, "bootstrap", isBootstrap, "after", tableJoinWait)
			if err := nw.ClosePeer(pi.ID); err != nil {
				logger.Debugw("closing connections", "peer", pi.ID, "err", err)
			}
		}
		if err := b.h.ConnectOnce(ctx, pi); err != nil {
			logger.Debugw("probe failed", "peer", pi.ID, "err", err)
			return fmt.Errorf("bootstrap: probe %s: %w", pi.ID, err)
		}
		logger.Debugw("probe reached peer", "peer", pi.ID)
		if isBootstrap {
			b.protect(pi.ID)
		}
		return nil
	}
	return fmt.Errorf("bootstrap: probe: %w", ErrAllConnected)
}

// connectedLongerThan reports whether p's oldest open connection was opened
// more than d ago.
func connectedLongerThan(nw network.Network, p peer.ID, d time.Duration) bool {
	for _, c := range nw.ConnsToPeer(p) {
		if !c.IsClosed() && time.Since(c.Stat().Opened) > d {
			return true
		}
	}
	return false
}

// SaveBackup saves the backup peers now: up to 20 peers of the routing
// table that are connected and have direct (non-relay) addresses, not the
// configured bootstrap peers, topped up with the previous backup peers,
// written atomically to the backup file. BackupPeers returns them from
// just before the write on, also when the write fails (SaveBackup then
// returns the error, and the next save tries again). When no peer
// qualifies it writes nothing and returns nil, so a node that lost its
// connections keeps its last good backup (and a corrupt file stays until
// a save with peers).
// Without WithBackupFile it does nothing and returns nil. The
// Bootstrapper calls it periodically, after a successful Bootstrap or
// Recover, and on Close; call it yourself for a save at other times.
func (b *Bootstrapper) SaveBackup() error {
	if b.cfg.backupFile == "" {
		return nil
	}
	b.saveMu.Lock()
	defer b.saveMu.Unlock()
	fresh := selectBackupPeers(b.h, b.rt.ListPeers(), b.exclude, maxBackupPeers)
	if len(fresh) == 0 {
		logger.Debugw("no connected routing-table peers to save as backup peers", "path", b.cfg.backupFile)
		return nil
	}
	// Memory first, then the file (see BackupPeers). If the write fails
	// the peers stay in memory, the best fallback there is, and the next
	// save writes them.
	b.mu.Lock()
	merged := mergeBackupPeers(fresh, b.backup, b.exclude, maxBackupPeers)
	b.backup = merged
	b.mu.Unlock()
	if err := saveBackup(b.cfg.backupFile, merged); err != nil {
		if errors.Is(err, errNoBackupPeers) {
			return nil // cannot happen: fresh peers have valid IDs and direct addresses
		}
		return err
	}
	logger.Debugw("backup peers saved", "path", b.cfg.backupFile, "count", len(merged), "fresh", len(fresh))
	return nil
}

// Close stops the save loop, ends running Bootstrap, Recover and Probe
// calls with ErrClosed (waiting for them), saves the backup peers a last
// time (see SaveBackup) and removes the protection it gave bootstrap
// peers. It does not close the host. Close is idempotent and returns the
// final save's error every time.
func (b *Bootstrapper) Close() error {
	b.closeOnce.Do(func() {
		b.mu.Lock()
		b.closed = true
		b.mu.Unlock()
		b.cancel(ErrClosed)
		b.wg.Wait()
		b.closeErr = b.SaveBackup()
		b.mu.Lock()
		protected := b.protected
		b.protected = nil
		b.mu.Unlock()
		for id := range protected {
			b.h.ConnManager().Unprotect(id, ProtectTag)
		}
	})
	return b.closeErr
}

// begin registers a call: it fails after Close, and returns a ctx that also
// ends (with ErrClosed) when Close is called, and the func ending the call.
func (b *Bootstrapper) begin(ctx context.Context) (context.Context, func(), error) {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return nil, nil, ErrClosed
	}
	b.wg.Add(1)
	b.mu.Unlock()
	if ctx.Err() != nil {
		b.wg.Done()
		return nil, nil, context.Cause(ctx)
	}
	cctx, cancel := context.WithCancelCause(ctx)
	stop := context.AfterFunc(b.ctx, func() { cancel(ErrClosed) })
	return cctx, func() {
		stop()
		cancel(nil)
		b.wg.Done()
	}, nil
}

// protect protects a connected bootstrap peer in the connection manager.
func (b *Bootstrapper) protect(id peer.ID) {
	b.mu.Lock()
	if b.protected == nil { // closed
		b.mu.Unlock()
		return
	}
	b.protected[id] = struct{}{}
	b.mu.Unlock()
	b.h.ConnManager().Protect(id, ProtectTag)
}

func (b *Bootstrapper) saveLoop() {
	defer b.wg.Done()
	t := time.NewTicker(b.cfg.saveInterval)
	defer t.Stop()
	for {
		select {
		case <-b.ctx.Done():
			return
		case <-t.C:
		case <-b.saveKick:
		}
		if err := b.SaveBackup(); err != nil {
			logger.Warnw("saving backup peers failed", "path", b.cfg.backupFile, "err", err)
		}
	}
}

// requestSave asks the save loop for a save soon, without blocking.
func (b *Bootstrapper) requestSave() {
	if b.cfg.backupFile == "" {
		return
	}
	select {
	case b.saveKick <- struct{}{}:
	default: // a save is already pending
	}
}

func cloneInfos(in []peer.AddrInfo) []peer.AddrInfo {
	if in == nil {
		return nil
	}
	out := make([]peer.AddrInfo, len(in))
	for i, pi := range in {
		out[i] = peer.AddrInfo{ID: pi.ID, Addrs: append([]ma.Multiaddr(nil), pi.Addrs...)}
	}
	return out
}
