package bootstrap

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	logging "github.com/ipfs/go-log/v2"
	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/chiral-network/go-libp2p-resilience/dialer"
	"github.com/chiral-network/go-libp2p-resilience/internal/testnet"
	"github.com/chiral-network/go-libp2p-resilience/resilience"
)

func TestNewErrors(t *testing.T) {
	dh, err := dialer.Wrap(newTestHost(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = dh.Close() })
	good := peer.AddrInfo{ID: testPeerID(t), Addrs: maddrs(t, "/ip4/127.0.0.1/tcp/9")}
	peers := []peer.AddrInfo{good}

	tests := []struct {
		name  string
		h     *dialer.Host
		rt    RoutingTable
		peers []peer.AddrInfo
		opts  []Option
		want  string
	}{
		{"nil host", nil, fakeTable{}, peers, nil, "h must not be nil"},
		{"nil table", dh, nil, peers, nil, "rt must not be nil"},
		{"nil DHT", dh, DHT(nil), peers, nil, "rt must not be nil"},
		{"nil option", dh, fakeTable{}, peers, []Option{WithMinPeers(2), nil}, "opts[1] is nil"},
		{"min peers", dh, fakeTable{}, peers, []Option{WithMinPeers(0)}, "WithMinPeers(0)"},
		{"save interval", dh, fakeTable{}, peers, []Option{WithSaveInterval(0)}, "WithSaveInterval(0s)"},
		{"backup file", dh, fakeTable{}, peers, []Option{WithBackupFile("")}, "WithBackupFile"},
		{"retry config", dh, fakeTable{}, peers, []Option{WithRetryConfig(resilience.RetryConfig{BackoffMultiplier: 0.5})}, "WithRetryConfig"},
		{"empty id", dh, fakeTable{}, []peer.AddrInfo{good, {Addrs: good.Addrs}}, nil, "peers[1]"},
		{"bad id", dh, fakeTable{}, []peer.AddrInfo{{ID: "nonsense", Addrs: good.Addrs}}, nil, "peers[0]: bad peer id"},
		{"no addrs", dh, fakeTable{}, []peer.AddrInfo{{ID: good.ID}}, nil, "peers[0]: " + good.ID.String() + ": no addresses"},
		{"empty addr", dh, fakeTable{}, []peer.AddrInfo{{ID: good.ID, Addrs: []ma.Multiaddr{good.Addrs[0], nil}}}, nil, "addrs[1] is empty"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			b, err := New(tc.h, tc.rt, tc.peers, tc.opts...)
			if err == nil {
				_ = b.Close()
				t.Fatalf("New succeeded, want an error containing %q", tc.want)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %q does not contain %q", err, tc.want)
			}
		})
	}
}

func TestNewPeers(t *testing.T) {
	dh, err := dialer.Wrap(newTestHost(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = dh.Close() })
	other := testPeerID(t)
	parsed, err := ParseAddrs([]string{
		"/ip4/127.0.0.1/tcp/9/p2p/" + other.String(),
		"/ip4/127.0.0.1/tcp/7/p2p/" + dh.ID().String(), // self: skipped
	})
	if err != nil {
		t.Fatal(err)
	}
	// A second entry for the same peer is merged.
	parsed = append(parsed, peer.AddrInfo{ID: other, Addrs: maddrs(t, "/ip4/127.0.0.1/tcp/10", "/ip4/127.0.0.1/tcp/9")})
	b, err := New(dh, fakeTable{}, parsed)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	want := []peer.AddrInfo{{ID: other, Addrs: maddrs(t, "/ip4/127.0.0.1/tcp/9", "/ip4/127.0.0.1/tcp/10")}}
	if g, w := addrInfosString(b.Peers()), addrInfosString(want); g != w {
		t.Errorf("Peers() = %s, want %s", g, w)
	}
	if cfg := dh.Profile(other); cfg != resilience.ForDHTBootstrap() {
		t.Errorf("the dialer's profile for a bootstrap peer is %+v, want the bootstrap profile", cfg)
	}
}

func TestNoPeers(t *testing.T) {
	dh, err := dialer.Wrap(newTestHost(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = dh.Close() })
	b, err := New(dh, fakeTable{}, nil, WithBackupFile(filepath.Join(t.TempDir(), "none.json")))
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	ctx := ctxTimeout(t)
	if _, err := b.Bootstrap(ctx); !errors.Is(err, ErrNoBootstrapPeers) {
		t.Errorf("Bootstrap without peers: %v, want ErrNoBootstrapPeers", err)
	}
	if err := b.Recover(ctx); !errors.Is(err, ErrNoBootstrapPeers) {
		t.Errorf("Recover without peers: %v, want ErrNoBootstrapPeers", err)
	}
	if err := b.Probe(ctx); !errors.Is(err, ErrNoBootstrapPeers) {
		t.Errorf("Probe without peers: %v, want ErrNoBootstrapPeers", err)
	}
	if b.BackupLoadErr() != nil || b.BackupPeers() != nil {
		t.Errorf("missing backup file: load error %v, peers %v", b.BackupLoadErr(), b.BackupPeers())
	}
}

// TestBootstrapNetwork: ten kad-dht servers, three of them bootstrap peers
// for all (each skips itself), bootstrap concurrently; every table reaches
// MinPeers.
func TestBootstrapNetwork(t *testing.T) {
	nodes := dhtNodes(t, 10)
	boot := infos(nodes[:3]...)
	subjects := make([]*subject, len(nodes))
	for i, n := range nodes {
		subjects[i] = newSubjectOn(t, n, boot)
	}
	ctx := ctxTimeout(t)
	results := make([]Result, len(nodes))
	errs := make([]error, len(nodes))
	var wg sync.WaitGroup
	for i, s := range subjects {
		wg.Go(func() { results[i], errs[i] = s.b.Bootstrap(ctx) })
	}
	wg.Wait()
	for i, s := range subjects {
		if errs[i] != nil {
			t.Fatalf("node %d: Bootstrap: %v", i, errs[i])
		}
		want := 3
		if i < 3 {
			want = 2 // a bootstrap node does not dial itself
		}
		res := results[i]
		if len(res.Connected) != want || len(res.Failed) != 0 {
			t.Errorf("node %d: connected %v, failed %v; want %d connected, none failed", i, ids(res.Connected), ids(res.Failed), want)
		}
		for _, pr := range res.Connected {
			if pr.Backup || pr.Err != nil {
				t.Errorf("node %d: connected result %+v", i, pr)
			}
			if !s.h.ConnManager().IsProtected(pr.ID, ProtectTag) {
				t.Errorf("node %d: bootstrap peer %s not protected", i, pr.ID)
			}
		}
		if res.TableSize < 1 {
			t.Errorf("node %d: table size %d after Bootstrap", i, res.TableSize)
		}
	}
	for i, s := range subjects {
		waitFor(t, "every routing table to reach MinPeers", func() bool { return s.tableSize() >= DefaultMinPeers })
		t.Logf("node %d: table %d at return, %d now", i, results[i].TableSize, s.tableSize())
	}
}

// TestBootstrapSomePeersDown: two of three bootstrap peers are down; the
// third brings the node into a live network.
func TestBootstrapSomePeersDown(t *testing.T) {
	live := dhtNode(t)
	down := stoppedNodes(t, 2)
	others := dhtNodes(t, 4)
	testnet.ConnectAll(t, append([]*testnet.Node{live}, others...)...)

	s := newSubject(t, infos(live, down[0], down[1]), WithRetryConfig(testProfile()))
	res, err := s.b.Bootstrap(ctxTimeout(t))
	if err != nil {
		t.Fatalf("Bootstrap: %v", err)
	}
	if g := ids(res.Connected); !slices.Equal(g, []peer.ID{live.ID()}) {
		t.Errorf("connected %v, want [%s]", g, live.ID())
	}
	if g := ids(res.Failed); !slices.Equal(g, []peer.ID{down[0].ID(), down[1].ID()}) {
		t.Errorf("failed %v, want the two stopped peers", g)
	}
	for _, pr := range res.Failed {
		if pr.Attempts != testProfile().MaxAttempts || !errors.Is(pr.Err, resilience.ErrExhausted) {
			t.Errorf("failed peer %s: %d attempts, err %v; want %d attempts and ErrExhausted", pr.ID, pr.Attempts, pr.Err, testProfile().MaxAttempts)
		}
		if s.h.ConnManager().IsProtected(pr.ID, ProtectTag) {
			t.Errorf("unreachable peer %s protected", pr.ID)
		}
		if st := tracker(s.h, pr.ID).State; st != resilience.Exhausted {
			t.Errorf("tracker of %s is %v, want exhausted", pr.ID, st)
		}
	}
	if len(res.Connected) == 1 && res.Connected[0].Attempts != 1 {
		t.Errorf("live peer took %d attempts, want 1", res.Connected[0].Attempts)
	}
	if !s.h.ConnManager().IsProtected(live.ID(), ProtectTag) {
		t.Error("live bootstrap peer not protected")
	}
	waitFor(t, "the routing table to reach MinPeers", func() bool { return s.tableSize() >= DefaultMinPeers })
}

// TestBootstrapPeersStartLate: every bootstrap peer is down when Bootstrap
// starts and comes back (same port, same key) after the first attempts
// failed; Bootstrap's retries reach them. The profile is shortened so the
// test stays fast: 6 attempts, 500 ms initial delay doubling up to 4 s
// (attempts at about 0, 0.5, 1.5, 3.5, 7.5 and 11.5 s).
func TestBootstrapPeersStartLate(t *testing.T) {
	boot := stoppedNodes(t, 3)
	profile := resilience.RetryConfig{
		MaxAttempts: 6, InitialDelay: 500 * time.Millisecond, MaxDelay: 4 * time.Second,
		BackoffMultiplier: 2, JitterFactor: 0.1, ResetOnSuccess: true,
	}
	s := newSubject(t, infos(boot...), WithRetryConfig(profile))

	type outcome struct {
		res Result
		err error
	}
	done := make(chan outcome, 1)
	ctx := ctxTimeout(t)
	go func() {
		res, err := s.b.Bootstrap(ctx)
		done <- outcome{res, err}
	}()
	// Bring them back only after three failed attempts each (about 1.5 s).
	waitFor(t, "three failed attempts to every bootstrap peer", func() bool {
		for _, n := range boot {
			if tracker(s.h, n.ID()).ConsecutiveFailures < 3 {
				return false
			}
		}
		return true
	})
	for _, n := range boot {
		n.Start()
	}
	var o outcome
	select {
	case o = <-done:
	case <-time.After(waitTimeout):
		t.Fatal("Bootstrap did not return")
	}
	if o.err != nil {
		t.Fatalf("Bootstrap: %v", o.err)
	}
	if len(o.res.Connected) != 3 || len(o.res.Failed) != 0 {
		t.Fatalf("connected %v, failed %+v; want all three connected", ids(o.res.Connected), o.res.Failed)
	}
	for _, pr := range o.res.Connected {
		if pr.Attempts < 4 || pr.Attempts > profile.MaxAttempts {
			t.Errorf("peer %s connected after %d attempts, want 4..%d", pr.ID, pr.Attempts, profile.MaxAttempts)
		}
		tr := tracker(s.h, pr.ID)
		if tr.State != resilience.Connected || tr.AttemptCount != 0 {
			t.Errorf("tracker of %s: %v with %d attempts, want connected with the count reset (ResetOnSuccess)", pr.ID, tr.State, tr.AttemptCount)
		}
		if tr.Config != profile {
			t.Errorf("tracker of %s keeps config %+v, want the profile %+v", pr.ID, tr.Config, profile)
		}
	}
}

// TestBackupsOnlyWhenNeeded: when every bootstrap peer connects, the
// backup peers are not dialled.
func TestBackupsOnlyWhenNeeded(t *testing.T) {
	boot := dhtNode(t)
	outsider := dhtNode(t) // live, but not part of boot's network
	path := filepath.Join(t.TempDir(), "backup.json")
	if err := saveBackup(path, infos(outsider)); err != nil {
		t.Fatal(err)
	}
	// A long initial delay: the backup peers would be dialled only if
	// connecting to boot took that long.
	profile := testProfile()
	profile.InitialDelay, profile.MaxDelay = 20*time.Second, 20*time.Second
	s := newSubject(t, infos(boot), WithRetryConfig(profile), WithBackupFile(path))
	if len(s.b.BackupPeers()) != 1 {
		t.Fatalf("backup peers %v, want the outsider", s.b.BackupPeers())
	}
	res, err := s.b.Bootstrap(ctxTimeout(t))
	if err != nil {
		t.Fatalf("Bootstrap: %v", err)
	}
	if g := ids(res.Connected); !slices.Equal(g, []peer.ID{boot.ID()}) || len(res.Failed) != 0 {
		t.Errorf("connected %v, failed %v; want only the bootstrap peer", g, ids(res.Failed))
	}
	if connected(s.h, outsider.ID()) {
		t.Error("backup peer dialled although the bootstrap peer connected")
	}
}

// TestBootstrapFromBackup: a first run saves backup peers on Close; the
// next run, whose only bootstrap peer is gone, joins through them.
func TestBootstrapFromBackup(t *testing.T) {
	boot := dhtNode(t)
	others := dhtNodes(t, 5)
	testnet.ConnectAll(t, append([]*testnet.Node{boot}, others...)...)
	path := filepath.Join(t.TempDir(), "state", "backup-peers.json")
	otherIDs := make(map[peer.ID]bool)
	for _, n := range others {
		otherIDs[n.ID()] = true
	}

	first := newSubject(t, infos(boot), WithRetryConfig(testProfile()), WithBackupFile(path))
	if _, err := first.b.Bootstrap(ctxTimeout(t)); err != nil {
		t.Fatalf("first Bootstrap: %v", err)
	}
	waitFor(t, "the first node's table to hold the network", func() bool { return first.tableSize() >= DefaultMinPeers })
	if err := first.b.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	saved, err := loadBackup(path)
	if err != nil || len(saved) == 0 {
		t.Fatalf("backup after Close: %v, %v; want peers", saved, err)
	}
	for _, pi := range saved {
		if !otherIDs[pi.ID] {
			t.Errorf("saved peer %s is not one of the network's non-bootstrap nodes", pi.ID)
		}
	}

	boot.Stop()
	second := newSubject(t, infos(boot), WithRetryConfig(testProfile()), WithBackupFile(path))
	if g, w := addrInfosString(second.b.BackupPeers()), addrInfosString(saved); g != w {
		t.Fatalf("loaded backup peers %s, want %s", g, w)
	}
	res, err := second.b.Bootstrap(ctxTimeout(t))
	if err != nil {
		t.Fatalf("second Bootstrap: %v", err)
	}
	if len(res.Connected) == 0 {
		t.Fatal("no peer connected")
	}
	for _, pr := range res.Connected {
		if !pr.Backup || !otherIDs[pr.ID] {
			t.Errorf("connected %+v, want only backup peers", pr)
		}
		if second.h.ConnManager().IsProtected(pr.ID, ProtectTag) {
			t.Errorf("backup peer %s protected as a bootstrap peer", pr.ID)
		}
	}
	if len(res.Failed) != 1 || res.Failed[0].ID != boot.ID() || res.Failed[0].Backup ||
		!errors.Is(res.Failed[0].Err, resilience.ErrExhausted) {
		t.Errorf("failed %+v, want the stopped bootstrap peer, exhausted", res.Failed)
	}
	waitFor(t, "the second node's table to reach MinPeers", func() bool { return second.tableSize() >= DefaultMinPeers })
}

// TestBootstrapBadAddrs: a bootstrap entry with the wrong peer ID at a live
// address fails permanently after one attempt, a dead address after the
// profile's attempts; with nothing reachable, the error names both.
func TestBootstrapBadAddrs(t *testing.T) {
	live := dhtNode(t)
	dead := stoppedNodes(t, 1)[0]
	impostor := testPeerID(t)
	parsed, err := ParseAddrs([]string{
		live.Addrs()[0].String() + "/p2p/" + impostor.String(),
		dead.Addrs()[0].String() + "/p2p/" + dead.ID().String(),
	})
	if err != nil {
		t.Fatal(err)
	}
	s := newSubject(t, parsed, WithRetryConfig(testProfile()))
	res, err := s.b.Bootstrap(ctxTimeout(t))
	if !errors.Is(err, ErrNoBootstrapPeers) || !errors.Is(err, resilience.ErrExhausted) {
		t.Fatalf("Bootstrap error %v, want ErrNoBootstrapPeers with the exhausted peer's cause", err)
	}
	for _, id := range []peer.ID{impostor, dead.ID()} {
		if !strings.Contains(err.Error(), id.String()) {
			t.Errorf("error %q does not name peer %s", err, id)
		}
	}
	if len(res.Connected) != 0 || len(res.Failed) != 2 {
		t.Fatalf("connected %v, failed %+v", ids(res.Connected), res.Failed)
	}
	if pr := res.Failed[0]; pr.ID != impostor || pr.Attempts != 1 || !resilience.IsPermanent(pr.Err) {
		t.Errorf("impostor: %+v, want 1 attempt and a permanent error", pr)
	}
	if pr := res.Failed[1]; pr.ID != dead.ID() || pr.Attempts != testProfile().MaxAttempts || !errors.Is(pr.Err, resilience.ErrExhausted) {
		t.Errorf("dead peer: %+v, want %d attempts, exhausted", pr, testProfile().MaxAttempts)
	}
	if connected(s.h, live.ID()) {
		t.Error("connected to the live node although its entry named another peer")
	}
}

// observeLogs routes the package logger to an observer for the rest of the
// test.
func observeLogs(t *testing.T) *observer.ObservedLogs {
	t.Helper()
	core, logs := observer.New(zapcore.DebugLevel)
	saved := logger
	logger = &logging.ZapEventLogger{SugaredLogger: *zap.New(core).Sugar()}
	t.Cleanup(func() { logger = saved })
	return logs
}

// TestCorruptBackupIgnored: a corrupt backup file is reported with a
// warning, ignored, kept while there is nothing to save, and replaced by
// the first save that has peers.
func TestCorruptBackupIgnored(t *testing.T) {
	logs := observeLogs(t)
	boot := dhtNode(t)
	path := filepath.Join(t.TempDir(), "backup.json")
	garbage := []byte(`{"version":1,"peers":[{"id":"QmNotAPeer","addrs":["/ip4/127.0.0.1/tcp/1"]}]}`)
	if err := os.WriteFile(path, garbage, 0o600); err != nil {
		t.Fatal(err)
	}

	s := newSubject(t, infos(boot), WithRetryConfig(testProfile()), WithBackupFile(path))
	if err := s.b.BackupLoadErr(); !errors.Is(err, ErrCorruptBackup) {
		t.Fatalf("BackupLoadErr = %v, want ErrCorruptBackup", err)
	}
	if p := s.b.BackupPeers(); p != nil {
		t.Fatalf("backup peers %v from a corrupt file", p)
	}
	warnings := logs.FilterLevelExact(zapcore.WarnLevel).FilterField(zap.String("path", path)).All()
	if len(warnings) != 1 || !strings.Contains(warnings[0].Message, "backup peers file") {
		t.Fatalf("warnings about the file: %v, want one", warnings)
	}

	if _, err := s.b.Bootstrap(ctxTimeout(t)); err != nil {
		t.Fatalf("Bootstrap: %v", err)
	}
	// Only the bootstrap peer is known, and it is never a backup peer:
	// nothing to save, so the corrupt file stays.
	if err := s.b.SaveBackup(); err != nil {
		t.Fatalf("SaveBackup: %v", err)
	}
	if data, err := os.ReadFile(path); err != nil || string(data) != string(garbage) {
		t.Fatalf("corrupt file changed without peers to save (%v): %s", err, data)
	}

	// A peer joins; once the node knows it, the next save replaces the file.
	joiner := dhtNode(t)
	testnet.Connect(t, joiner, boot)
	if err := s.b.Recover(ctxTimeout(t)); err != nil {
		t.Fatalf("Recover: %v", err)
	}
	waitFor(t, "the node to find the new peer", func() bool {
		return slices.Contains(s.node.DHT().RoutingTable().ListPeers(), joiner.ID()) && connected(s.h, joiner.ID())
	})
	if err := s.b.SaveBackup(); err != nil {
		t.Fatalf("SaveBackup: %v", err)
	}
	saved, err := loadBackup(path)
	if err != nil || len(saved) != 1 || saved[0].ID != joiner.ID() {
		t.Fatalf("after a save with peers: %v, %v; want the new peer", saved, err)
	}
}

// TestProbeRotates: each Probe makes one dial, to the next bootstrap or
// backup peer in turn; concurrent calls share the rotation.
func TestProbeRotates(t *testing.T) {
	boot := stoppedNodes(t, 3)
	backupNode := dhtNode(t)
	path := filepath.Join(t.TempDir(), "backup.json")
	if err := saveBackup(path, infos(backupNode)); err != nil {
		t.Fatal(err)
	}
	n := dhtNode(t)
	dials := &dialCounter{}
	h := wrap(t, n, dialer.WithMetricsTracer(dials))
	b, err := New(h, DHT(n.DHT()), infos(boot...), WithBackupFile(path))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close() })
	ctx := ctxTimeout(t)

	// One round: three failed dials, then the backup peer.
	for i, want := range []peer.ID{boot[0].ID(), boot[1].ID(), boot[2].ID()} {
		err := b.Probe(ctx)
		if err == nil || !strings.Contains(err.Error(), want.String()) {
			t.Fatalf("probe %d: %v, want an error naming %s", i, err, want)
		}
		if got := dials.dials.Load(); got != int64(i+1) {
			t.Fatalf("after probe %d: %d dials, want %d", i, got, i+1)
		}
	}
	if err := b.Probe(ctx); err != nil {
		t.Fatalf("probe of the live backup peer: %v", err)
	}
	if !connected(h, backupNode.ID()) || dials.dials.Load() != 4 {
		t.Fatalf("backup peer connected %v after %d dials, want connected after 4", connected(h, backupNode.ID()), dials.dials.Load())
	}
	// A failed probe schedules nothing: the tracker is Idle, not Retrying.
	for _, nd := range boot {
		if tr := tracker(h, nd.ID()); tr.AttemptCount != 1 || tr.State != resilience.Idle {
			t.Errorf("tracker of %s: %v with %d attempts, want idle after 1", nd.ID(), tr.State, tr.AttemptCount)
		}
	}

	// Eight concurrent probes: the connected backup peer is skipped (a dial
	// to it would prove nothing), so each probe goes to a stopped peer;
	// probes of one peer that overlap share its dial, so there are at most
	// eight more dials, and every dial is counted exactly once.
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			if err := b.Probe(ctx); err == nil {
				t.Error("a probe succeeded with only stopped peers to dial")
			}
		})
	}
	wg.Wait()
	extra := dials.dials.Load() - 4
	if extra < 3 || extra > 8 {
		t.Errorf("%d dials for 8 concurrent probes of 3 stopped peers, want 3..8", extra)
	}
	var attempts int64
	for _, nd := range boot {
		tr := tracker(h, nd.ID())
		if tr.AttemptCount != tr.ConsecutiveFailures || tr.State != resilience.Idle {
			t.Errorf("tracker of %s: %v with %d attempts and %d failures, want idle with attempts = failures",
				nd.ID(), tr.State, tr.AttemptCount, tr.ConsecutiveFailures)
		}
		attempts += int64(tr.AttemptCount)
	}
	if want := dials.dials.Load() - 1; attempts != want { // one dial reached the backup peer
		t.Errorf("trackers of the stopped peers count %d attempts, the dialer made %d dials to them", attempts, want)
	}

	// The first bootstrap peer is back: the rotation reaches it within one
	// turn over the three stopped peers.
	boot[0].Start()
	var err2 error
	for range 3 {
		if err2 = b.Probe(ctx); err2 == nil {
			break
		}
	}
	if err2 != nil {
		t.Fatalf("probe of the restarted peer: %v", err2)
	}
	if !connected(h, boot[0].ID()) || !h.ConnManager().IsProtected(boot[0].ID(), ProtectTag) {
		t.Error("restarted bootstrap peer not connected and protected after a successful probe")
	}
}

// TestRecoverResetsExhausted: a bootstrap peer that was given up on is
// dialled again by Recover, with a fresh round, and connects once it is back.
func TestRecoverResetsExhausted(t *testing.T) {
	boot := stoppedNodes(t, 1)[0]
	backupNode := dhtNode(t)
	path := filepath.Join(t.TempDir(), "backup.json")
	s := newSubject(t, infos(boot), WithRetryConfig(testProfile()), WithBackupFile(path))
	ctx := ctxTimeout(t)
	// Two failed probes leave the tracker Idle (nothing is scheduled) with
	// two attempts and two failures.
	for range 2 {
		if err := s.b.Probe(ctx); err == nil {
			t.Fatal("probe of a stopped peer succeeded")
		}
	}
	if tr := tracker(s.h, boot.ID()); tr.State != resilience.Idle || tr.AttemptCount != 2 || tr.ConsecutiveFailures != 2 {
		t.Fatalf("tracker after two probes: %v with %d attempts", tr.State, tr.AttemptCount)
	}
	res, err := s.b.Bootstrap(ctx)
	if !errors.Is(err, ErrNoBootstrapPeers) {
		t.Fatalf("Bootstrap with the only peer down: %v, want ErrNoBootstrapPeers", err)
	}
	if len(res.Failed) != 1 || res.Failed[0].Attempts != testProfile().MaxAttempts {
		t.Fatalf("failed %+v, want one peer with a whole round of %d attempts", res.Failed, testProfile().MaxAttempts)
	}
	if tr := tracker(s.h, boot.ID()); tr.State != resilience.Exhausted {
		t.Fatalf("tracker %v, want exhausted", tr.State)
	}

	// Still down: Recover runs a whole new round (not one attempt on top of
	// the exhausted count) and fails.
	if err := s.b.Recover(ctx); !errors.Is(err, ErrNoBootstrapPeers) || !errors.Is(err, resilience.ErrExhausted) {
		t.Fatalf("Recover with the peer down: %v", err)
	}
	if tr := tracker(s.h, boot.ID()); tr.State != resilience.Exhausted || tr.AttemptCount != testProfile().MaxAttempts {
		t.Fatalf("tracker after Recover: %v with %d attempts, want exhausted after a fresh round of %d", tr.State, tr.AttemptCount, testProfile().MaxAttempts)
	}

	boot.Start()
	if err := s.b.Recover(ctx); err != nil {
		t.Fatalf("Recover with the peer back: %v", err)
	}
	if tr := tracker(s.h, boot.ID()); tr.State != resilience.Connected {
		t.Errorf("tracker %v, want connected", tr.State)
	}
	if !connected(s.h, boot.ID()) || !s.h.ConnManager().IsProtected(boot.ID(), ProtectTag) {
		t.Error("bootstrap peer not connected and protected after Recover")
	}
	if connected(s.h, backupNode.ID()) {
		t.Fatal("test setup: backup node connected too early")
	}

	// Recover also dials backup peers, even when bootstrap peers are fine.
	if err := saveBackup(path, infos(backupNode)); err != nil {
		t.Fatal(err)
	}
	s2 := newSubject(t, infos(boot), WithRetryConfig(testProfile()), WithBackupFile(path))
	if err := s2.b.Recover(ctx); err != nil {
		t.Fatalf("Recover: %v", err)
	}
	if !connected(s2.h, boot.ID()) || !connected(s2.h, backupNode.ID()) {
		t.Error("Recover did not connect both the bootstrap and the backup peer")
	}
}

// TestRecoverEndsOnceTableFull: one dial slot, bootstrap and backup peers
// that are down (stale backup peers) mixed with live ones, an hour between
// attempts. Recover reaches every live peer (a down peer holds the slot for
// one dial, not for its whole round) and, once the table holds MinPeers,
// ends the down peers' rounds instead of waiting hours for them: none of
// them gets a second attempt or is left exhausted.
func TestRecoverEndsOnceTableFull(t *testing.T) {
	down := testnet.NewNetwork(t, 6)
	for _, n := range down {
		n.Stop()
	}
	live := testnet.NewNetwork(t, 3)
	path := filepath.Join(t.TempDir(), "backup.json")
	if err := saveBackup(path, infos(down[1], live[1], down[2], down[3], live[2], down[4])); err != nil {
		t.Fatal(err)
	}
	n := testnet.NewNode(t)
	dials := &dialCounter{}
	h := wrap(t, n, dialer.WithMetricsTracer(dials), dialer.WithMaxConcurrentDials(1))
	profile := resilience.RetryConfig{MaxAttempts: 5, InitialDelay: time.Hour, MaxDelay: time.Hour, BackoffMultiplier: 2}
	b, err := New(h, connTable{h}, infos(down[0], live[0], down[5]),
		WithBackupFile(path), WithRetryConfig(profile), WithMinPeers(len(live)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close() }) // also ends a Recover that would wait for hours

	done := make(chan error, 1)
	go func() { done <- b.Recover(context.Background()) }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Recover: %v", err)
		}
	case <-time.After(waitTimeout): // far below the down peers' rounds (4 h)
		t.Fatal("Recover did not return after the table reached MinPeers")
	}
	for _, nd := range live {
		if !connected(h, nd.ID()) {
			t.Errorf("live peer %s not connected", nd.ID())
		}
	}
	for _, nd := range down {
		// The dialer ends a round its callers left right after they left.
		waitFor(t, "the down peer's round to end", func() bool { return tracker(h, nd.ID()).State == resilience.Idle })
		if tr := tracker(h, nd.ID()); tr.AttemptCount > 1 {
			t.Errorf("down peer %s: %d attempts, want at most 1", nd.ID(), tr.AttemptCount)
		}
	}
	if got, most := dials.dials.Load(), int64(len(live)+len(down)); got > most {
		t.Errorf("%d dials, want at most one per peer (%d)", got, most)
	}
}

// TestSaveBackupWriteFails: a save whose write fails still replaces the
// backup peers in memory, and reports the error.
func TestSaveBackupWriteFails(t *testing.T) {
	boot := dhtNode(t)
	peerNode := dhtNode(t)
	path := filepath.Join(t.TempDir(), "backup.json")
	if err := os.MkdirAll(filepath.Join(path, "child"), 0o700); err != nil { // the rename onto it fails
		t.Fatal(err)
	}
	s := newSubject(t, infos(boot), WithBackupFile(path))
	t.Cleanup(func() { _ = os.RemoveAll(path) }) // runs before Close, whose save then succeeds
	testnet.Connect(t, s.node, peerNode)
	waitFor(t, "the peer in the routing table", func() bool {
		return slices.Contains(s.node.DHT().RoutingTable().ListPeers(), peerNode.ID())
	})
	if err := s.b.SaveBackup(); err == nil || !strings.Contains(err.Error(), path) {
		t.Fatalf("SaveBackup onto a directory: %v, want an error naming %s", err, path)
	}
	if got := s.b.BackupPeers(); len(got) != 1 || got[0].ID != peerNode.ID() {
		t.Errorf("BackupPeers = %v after a save whose write failed, want the connected peer", got)
	}
}

// TestPeriodicSaveAndClose: backup peers are saved on the interval, Close
// is idempotent, unprotects, and ends later calls with ErrClosed.
func TestPeriodicSaveAndClose(t *testing.T) {
	boot := dhtNode(t)
	peerNode := dhtNode(t)
	path := filepath.Join(t.TempDir(), "backup.json")
	s := newSubject(t, infos(boot), WithBackupFile(path), WithSaveInterval(100*time.Millisecond))
	// Connect without Bootstrap, which would ask for a save itself.
	testnet.Connect(t, s.node, boot)
	testnet.Connect(t, s.node, peerNode)
	waitFor(t, "a periodic save with the connected peer", func() bool {
		saved, err := loadBackup(path)
		return err == nil && len(saved) == 1 && saved[0].ID == peerNode.ID()
	})
	if got := s.b.BackupPeers(); len(got) != 1 || got[0].ID != peerNode.ID() {
		t.Errorf("BackupPeers = %v after the save", got)
	}

	// Probe skips connected peers: evidence is a new connection.
	if err := s.b.Probe(ctxTimeout(t)); !errors.Is(err, ErrAllConnected) {
		t.Fatalf("Probe with every candidate connected = %v, want ErrAllConnected", err)
	}
	if err := s.b.Recover(ctxTimeout(t)); err != nil { // the connected bootstrap peer: protected
		t.Fatal(err)
	}
	if !s.h.ConnManager().IsProtected(boot.ID(), ProtectTag) {
		t.Fatal("bootstrap peer not protected")
	}
	for i := range 2 {
		if err := s.b.Close(); err != nil {
			t.Fatalf("Close %d: %v", i, err)
		}
	}
	if s.h.ConnManager().IsProtected(boot.ID(), ProtectTag) {
		t.Error("bootstrap peer still protected after Close")
	}
	ctx := context.Background()
	if _, err := s.b.Bootstrap(ctx); !errors.Is(err, ErrClosed) {
		t.Errorf("Bootstrap after Close: %v", err)
	}
	if err := s.b.Recover(ctx); !errors.Is(err, ErrClosed) {
		t.Errorf("Recover after Close: %v", err)
	}
	if err := s.b.Probe(ctx); !errors.Is(err, ErrClosed) {
		t.Errorf("Probe after Close: %v", err)
	}
}

// TestCloseEndsBootstrap: Close ends a Bootstrap that is waiting for peers.
func TestCloseEndsBootstrap(t *testing.T) {
	boot := stoppedNodes(t, 1)[0]
	// Long delays: without Close, Bootstrap would wait for minutes.
	profile := resilience.RetryConfig{MaxAttempts: 10, InitialDelay: time.Minute, MaxDelay: time.Minute, BackoffMultiplier: 1}
	s := newSubject(t, infos(boot), WithRetryConfig(profile))
	done := make(chan error, 1)
	go func() {
		_, err := s.b.Bootstrap(context.Background())
		done <- err
	}()
	waitFor(t, "the first failed attempt", func() bool { return tracker(s.h, boot.ID()).ConsecutiveFailures > 0 })
	if err := s.b.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if !errors.Is(err, ErrNoBootstrapPeers) || !errors.Is(err, ErrClosed) {
			t.Errorf("Bootstrap ended by Close: %v, want ErrNoBootstrapPeers with cause ErrClosed", err)
		}
	case <-time.After(waitTimeout):
		t.Fatal("Close did not end Bootstrap")
	}
}
