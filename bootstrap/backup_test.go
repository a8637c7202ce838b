package bootstrap

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/peerstore"
	ma "github.com/multiformats/go-multiaddr"
)

func testPeerID(t testing.TB) peer.ID {
	t.Helper()
	sk, _, err := crypto.GenerateEd25519Key(nil)
	if err != nil {
		t.Fatal(err)
	}
	id, err := peer.IDFromPrivateKey(sk)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

func maddrs(t testing.TB, ss ...string) []ma.Multiaddr {
	t.Helper()
	out := make([]ma.Multiaddr, len(ss))
	for i, s := range ss {
		out[i] = ma.StringCast(s)
	}
	return out
}

// addrInfosString renders peers as "id addr addr; id addr" for comparisons.
func addrInfosString(infos []peer.AddrInfo) string {
	var b strings.Builder
	for i, ai := range infos {
		if i > 0 {
			b.WriteString("; ")
		}
		b.WriteString(ai.ID.String())
		for _, a := range ai.Addrs {
			b.WriteString(" " + a.String())
		}
	}
	return b.String()
}

// dirEntries lists the names in dir.
func dirEntries(t *testing.T, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	return names
}

func TestBackupRoundTrip(t *testing.T) {
	a, b, c := testPeerID(t), testPeerID(t), testPeerID(t)
	relay := testPeerID(t)
	dir := filepath.Join(t.TempDir(), "state", "dht") // parents do not exist yet
	path := filepath.Join(dir, "backup-peers.json")
	in := []peer.AddrInfo{
		{ID: a, Addrs: maddrs(t, "/ip4/192.0.2.1/tcp/4001", "/ip4/192.0.2.1/udp/4001/quic-v1")},
		{ID: b, Addrs: maddrs(t, "/ip4/192.0.2.9/tcp/4001/p2p/"+relay.String()+"/p2p-circuit", "/dns4/b.example.org/tcp/4001")},
		{ID: c, Addrs: maddrs(t, "/ip4/192.0.2.9/tcp/4001/p2p/"+relay.String()+"/p2p-circuit")}, // relay only: dropped
		{ID: "", Addrs: maddrs(t, "/ip4/192.0.2.3/tcp/4001")},                                   // no ID: dropped
		{ID: peer.ID("not a multihash"), Addrs: maddrs(t, "/ip4/192.0.2.4/tcp/4001")},           // invalid ID: dropped
	}
	before := time.Now().UTC().Truncate(time.Second)
	if err := saveBackup(path, in); err != nil {
		t.Fatalf("saveBackup: %v", err)
	}

	got, err := loadBackup(path)
	if err != nil {
		t.Fatalf("loadBackup: %v", err)
	}
	want := []peer.AddrInfo{
		{ID: a, Addrs: maddrs(t, "/ip4/192.0.2.1/tcp/4001", "/ip4/192.0.2.1/udp/4001/quic-v1")},
		{ID: b, Addrs: maddrs(t, "/dns4/b.example.org/tcp/4001")},
	}
	if g, w := addrInfosString(got), addrInfosString(want); g != w {
		t.Errorf("loaded\n%s\nwant\n%s", g, w)
	}

	// File format, mode and directory.
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var f struct {
		Version int    `json:"version"`
		SavedAt string `json:"saved_at"`
		Peers   []struct {
			ID    string   `json:"id"`
			Addrs []string `json:"addrs"`
		} `json:"peers"`
	}
	if err := json.Unmarshal(data, &f); err != nil {
		t.Fatalf("file is not JSON: %v\n%s", err, data)
	}
	savedAt, err := time.Parse(time.RFC3339, f.SavedAt)
	if f.Version != 1 || err != nil || savedAt.Before(before) || len(f.Peers) != 2 ||
		f.Peers[0].ID != a.String() || f.Peers[1].Addrs[0] != "/dns4/b.example.org/tcp/4001" {
		t.Errorf("unexpected file content (saved_at err %v):\n%s", err, data)
	}
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Errorf("file mode %v, want 0600", st.Mode().Perm())
	}
	dst, err := os.Stat(dir)
	if err != nil {
		t.Fatal(err)
	}
	if dst.Mode().Perm() != 0o700 {
		t.Errorf("created directory mode %v, want 0700", dst.Mode().Perm())
	}
	if names := dirEntries(t, dir); len(names) != 1 || names[0] != "backup-peers.json" {
		t.Errorf("directory holds %q, want only the backup file", names)
	}
}

func TestSaveBackupReplaces(t *testing.T) {
	a, b := testPeerID(t), testPeerID(t)
	dir := t.TempDir()
	path := filepath.Join(dir, "backup.json")
	for i, id := range []peer.ID{a, b, a} {
		if err := saveBackup(path, []peer.AddrInfo{{ID: id, Addrs: maddrs(t, "/ip4/192.0.2.1/tcp/4001")}}); err != nil {
			t.Fatalf("save %d: %v", i, err)
		}
		got, err := loadBackup(path)
		if err != nil || len(got) != 1 || got[0].ID != id {
			t.Fatalf("after save %d: loaded %v, %v; want peer %s", i, got, err, id)
		}
		if names := dirEntries(t, dir); len(names) != 1 {
			t.Fatalf("after save %d the directory holds %q, want only the backup file", i, names)
		}
	}
}

func TestSaveBackupNothingToSave(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "backup.json")
	good := []peer.AddrInfo{{ID: testPeerID(t), Addrs: maddrs(t, "/ip4/192.0.2.1/tcp/4001")}}
	if err := saveBackup(path, good); err != nil {
		t.Fatal(err)
	}
	before, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	relayOnly := []peer.AddrInfo{{ID: testPeerID(t), Addrs: maddrs(t, "/ip4/192.0.2.9/tcp/1/p2p/"+testPeerID(t).String()+"/p2p-circuit")}}
	for name, peers := range map[string][]peer.AddrInfo{"nil": nil, "relay only": relayOnly, "no addrs": {{ID: testPeerID(t)}}} {
		t.Run(name, func(t *testing.T) {
			err := saveBackup(path, peers)
			if !errors.Is(err, errNoBackupPeers) || !strings.Contains(err.Error(), path) {
				t.Fatalf("saveBackup error %v, want errNoBackupPeers naming %s", err, path)
			}
			after, err := os.ReadFile(path)
			if err != nil || !bytes.Equal(before, after) {
				t.Fatalf("the good backup was changed (%v)", err)
			}
			if names := dirEntries(t, dir); len(names) != 1 {
				t.Fatalf("directory holds %q", names)
			}
		})
	}
}

func TestSaveBackupUnwritable(t *testing.T) {
	// Running as root, permissions do not stop writes; a regular file where
	// a directory is needed does.
	dir := t.TempDir()
	blocker := filepath.Join(dir, "not-a-dir")
	if err := os.WriteFile(blocker, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	peers := []peer.AddrInfo{{ID: testPeerID(t), Addrs: maddrs(t, "/ip4/192.0.2.1/tcp/4001")}}
	for _, path := range []string{
		filepath.Join(blocker, "backup.json"),
		filepath.Join(blocker, "sub", "backup.json"),
	} {
		err := saveBackup(path, peers)
		if err == nil || !strings.Contains(err.Error(), path) {
			t.Errorf("saveBackup(%s) error %v, want one naming the path", path, err)
		}
	}
	// The target itself is a directory: the rename fails and the
	// temporary file is cleaned up.
	target := filepath.Join(dir, "is-a-dir")
	if err := os.MkdirAll(filepath.Join(target, "child"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := saveBackup(target, peers); err == nil || !strings.Contains(err.Error(), target) {
		t.Errorf("saveBackup onto a directory: error %v, want one naming %s", err, target)
	}
	names := dirEntries(t, dir)
	if len(names) != 2 {
		t.Errorf("directory holds %q after failed saves, want no temporary files", names)
	}
}

func TestLoadBackupMissing(t *testing.T) {
	got, err := loadBackup(filepath.Join(t.TempDir(), "nope.json"))
	if got != nil || err != nil {
		t.Fatalf("loadBackup of a missing file = %v, %v; want nil, nil", got, err)
	}
}

func TestLoadBackupUnreadable(t *testing.T) {
	path := t.TempDir() // a directory cannot be read as a file
	_, err := loadBackup(path)
	if err == nil || !strings.Contains(err.Error(), path) {
		t.Fatalf("error %v, want one naming %s", err, path)
	}
	if errors.Is(err, ErrCorruptBackup) {
		t.Errorf("read error %v wraps ErrCorruptBackup", err)
	}
}

func TestLoadBackupCorrupt(t *testing.T) {
	id := testPeerID(t).String()
	entry := `{"id":"` + id + `","addrs":["/ip4/192.0.2.1/tcp/4001"]}`
	tests := []struct {
		name    string
		content string
		reason  string
	}{
		{"empty file", "", "not valid JSON"},
		{"not json", "peers: none", "not valid JSON"},
		{"truncated", `{"version":1,"peers":[` + entry, "not valid JSON"},
		{"trailing garbage", `{"version":1,"peers":[` + entry + `]} x`, "not valid JSON"},
		{"wrong type", `{"version":"1","peers":[]}`, "not valid JSON"},
		{"json null", `null`, "version 0"},
		{"no version", `{"peers":[` + entry + `]}`, "version 0"},
		{"future version", `{"version":2,"peers":[` + entry + `]}`, "version 2"},
		{"no peers", `{"version":1,"saved_at":"2024-01-01T00:00:00Z","peers":[]}`, "no usable peers"},
		{"missing id", `{"version":1,"peers":[` + entry + `,{"addrs":["/ip4/192.0.2.1/tcp/1"]}]}`, "peers[1]: missing id"},
		{"bad id", `{"version":1,"peers":[{"id":"QmNope","addrs":["/ip4/192.0.2.1/tcp/1"]}]}`, `peers[0]: bad id "QmNope"`},
		{"no addrs", `{"version":1,"peers":[{"id":"` + id + `","addrs":[]}]}`, "peers[0] (" + id + "): no addrs"},
		{"only unusable addrs", `{"version":1,"peers":[{"id":"` + id + `","addrs":["nonsense","/ip4/192.0.2.1/tcp/1/p2p/` + id + `/p2p-circuit"]}]}`, "no usable peers"},
		{"too large", `{"version":1,"peers":[` + entry + `]}` + strings.Repeat(" ", maxBackupFileSize), "larger than"},
	}
	dir := t.TempDir()
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(dir, strings.ReplaceAll(tc.name, " ", "-")+".json")
			if err := os.WriteFile(path, []byte(tc.content), 0o600); err != nil {
				t.Fatal(err)
			}
			got, err := loadBackup(path)
			if !errors.Is(err, ErrCorruptBackup) {
				t.Fatalf("loadBackup = %v, %v; want ErrCorruptBackup", got, err)
			}
			if got != nil {
				t.Errorf("peers %v returned with an error", got)
			}
			for _, part := range []string{path, tc.reason} {
				if !strings.Contains(err.Error(), part) {
					t.Errorf("error %q does not contain %q", err, part)
				}
			}
			after, err := os.ReadFile(path)
			if err != nil || string(after) != tc.content {
				t.Errorf("loadBackup changed the corrupt file (%v)", err)
			}
		})
	}

	t.Run("replaced by a good save", func(t *testing.T) {
		path := filepath.Join(dir, "not-json.json")
		pid := testPeerID(t)
		if err := saveBackup(path, []peer.AddrInfo{{ID: pid, Addrs: maddrs(t, "/ip4/192.0.2.1/tcp/4001")}}); err != nil {
			t.Fatal(err)
		}
		got, err := loadBackup(path)
		if err != nil || len(got) != 1 || got[0].ID != pid {
			t.Fatalf("after a good save: %v, %v", got, err)
		}
	})
}

func TestLoadBackupLenientAddrs(t *testing.T) {
	a, b, other := testPeerID(t), testPeerID(t), testPeerID(t)
	content := `{"version":1,"saved_at":"2024-01-01T00:00:00Z","future_field":true,"peers":[
		{"id":"` + a.String() + `","addrs":["/ip4/192.0.2.1/tcp/4001","/newproto/1","/ip4/192.0.2.1/tcp/4001/p2p/` + a.String() + `/p2p-circuit","/ip4/192.0.2.1/udp/4001/quic-v1/p2p/` + a.String() + `"]},
		{"id":"` + other.String() + `","addrs":["garbage"]},
		{"id":"` + peer.ToCid(b).String() + `","addrs":["/ip4/192.0.2.2/tcp/1/p2p/` + other.String() + `","/ip4/192.0.2.2/tcp/4001"]},
		{"id":"` + a.String() + `","addrs":["/ip4/192.0.2.1/tcp/4001","/ip6/2001:db8::1/tcp/4001"]}
	]}`
	got, err := decodeBackup([]byte(content))
	if err != nil {
		t.Fatalf("decodeBackup: %v", err)
	}
	want := []peer.AddrInfo{
		{ID: a, Addrs: maddrs(t, "/ip4/192.0.2.1/tcp/4001", "/ip4/192.0.2.1/udp/4001/quic-v1", "/ip6/2001:db8::1/tcp/4001")},
		{ID: b, Addrs: maddrs(t, "/ip4/192.0.2.2/tcp/4001")},
	}
	if g, w := addrInfosString(got), addrInfosString(want); g != w {
		t.Errorf("decoded\n%s\nwant\n%s", g, w)
	}
}

func TestMergeBackupPeers(t *testing.T) {
	ids := make([]peer.ID, 6)
	infos := make([]peer.AddrInfo, len(ids))
	for i := range ids {
		ids[i] = testPeerID(t)
		infos[i] = peer.AddrInfo{ID: ids[i], Addrs: maddrs(t, "/ip4/192.0.2.1/tcp/4001")}
	}
	p := func(is ...int) []peer.AddrInfo {
		var out []peer.AddrInfo
		for _, i := range is {
			out = append(out, infos[i])
		}
		return out
	}
	tests := []struct {
		name            string
		fresh, previous []peer.AddrInfo
		exclude         []int
		max             int
		want            []peer.AddrInfo
	}{
		{"fresh fills max", p(0, 1, 2), p(3, 4), nil, 3, p(0, 1, 2)},
		{"previous tops up", p(0, 1), p(3, 1, 4, 5), nil, 4, p(0, 1, 3, 4)},
		{"excluded dropped from both", p(0, 1), p(2, 3), []int{1, 3}, 10, p(0, 2)},
		{"duplicates in fresh", p(0, 0, 1), nil, nil, 10, p(0, 1)},
		{"nothing fresh", nil, p(2, 3), nil, 10, p(2, 3)},
		{"max zero", p(0), p(1), nil, 0, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			exclude := make(map[peer.ID]struct{})
			for _, i := range tc.exclude {
				exclude[ids[i]] = struct{}{}
			}
			got := mergeBackupPeers(tc.fresh, tc.previous, exclude, tc.max)
			if g, w := addrInfosString(got), addrInfosString(tc.want); g != w {
				t.Errorf("got\n%s\nwant\n%s", g, w)
			}
		})
	}
}

// newTestHost starts a libp2p host listening on 127.0.0.1 TCP only,
// closed when the test ends.
func newTestHost(t *testing.T) host.Host {
	t.Helper()
	h, err := libp2p.New(libp2p.ListenAddrStrings("/ip4/127.0.0.1/tcp/0"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := h.Close(); err != nil {
			t.Errorf("close host: %v", err)
		}
	})
	return h
}

func TestSelectBackupPeers(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	self := newTestHost(t)
	mixed := newTestHost(t)     // connected; a relay address is added beside its direct ones
	direct := newTestHost(t)    // connected, direct addresses
	excluded := newTestHost(t)  // connected but a configured bootstrap peer
	relayOnly := newTestHost(t) // connected, but only relay addresses in the peerstore
	for _, h := range []host.Host{mixed, direct, excluded, relayOnly} {
		// Connect returns after identify, so later peerstore edits stick.
		if err := self.Connect(ctx, peer.AddrInfo{ID: h.ID(), Addrs: h.Addrs()}); err != nil {
			t.Fatalf("connect: %v", err)
		}
	}
	relayAddr := ma.StringCast("/ip4/127.0.0.1/tcp/1/p2p/" + testPeerID(t).String() + "/p2p-circuit")
	ps := self.Peerstore()
	ps.AddAddr(mixed.ID(), relayAddr, peerstore.PermanentAddrTTL)
	ps.ClearAddrs(relayOnly.ID())
	ps.AddAddr(relayOnly.ID(), relayAddr, peerstore.PermanentAddrTTL)
	// A peer known with direct addresses but not connected.
	offline := testPeerID(t)
	ps.AddAddrs(offline, maddrs(t, "/ip4/127.0.0.1/tcp/9"), peerstore.PermanentAddrTTL)

	candidates := []peer.ID{offline, relayOnly.ID(), self.ID(), mixed.ID(), excluded.ID(), mixed.ID(), direct.ID()}
	exclude := map[peer.ID]struct{}{excluded.ID(): {}}

	wantMixed := peer.AddrInfo{ID: mixed.ID(), Addrs: directAddrs(ps.Addrs(mixed.ID()))}
	if len(wantMixed.Addrs) == 0 || len(wantMixed.Addrs) != len(ps.Addrs(mixed.ID()))-1 {
		t.Fatalf("peerstore addrs of the mixed peer: %v", ps.Addrs(mixed.ID()))
	}
	wantDirect := peer.AddrInfo{ID: direct.ID(), Addrs: ps.Addrs(direct.ID())}

	tests := []struct {
		name string
		max  int
		want []peer.AddrInfo
	}{
		{"all", maxBackupPeers, []peer.AddrInfo{wantMixed, wantDirect}},
		{"max one", 1, []peer.AddrInfo{wantMixed}},
		{"max zero", 0, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := selectBackupPeers(self, candidates, exclude, tc.max)
			if g, w := addrInfosString(got), addrInfosString(tc.want); g != w {
				t.Errorf("got\n%s\nwant\n%s", g, w)
			}
			for _, ai := range got {
				for _, a := range ai.Addrs {
					if isRelayAddr(a) {
						t.Errorf("relay address %s selected", a)
					}
				}
			}
		})
	}

	// Once the direct peer disconnects it is no longer selected.
	if err := self.Network().ClosePeer(direct.ID()); err != nil {
		t.Fatal(err)
	}
	got := selectBackupPeers(self, candidates, exclude, maxBackupPeers)
	if g, w := addrInfosString(got), addrInfosString([]peer.AddrInfo{wantMixed}); g != w {
		t.Errorf("after disconnect got\n%s\nwant\n%s", g, w)
	}
}

// FuzzLoadBackup checks that decoding any file content never panics, that
// every error wraps ErrCorruptBackup, and that whatever is accepted can be
// encoded and decoded again unchanged.
func FuzzLoadBackup(f *testing.F) {
	id := "12D3KooWD3eckifWpRn9wQpMG9R9hX3sD158z7EqHWmweQAJU5SA"
	for _, s := range []string{
		``,
		`null`,
		`{"version":1,"saved_at":"2024-01-01T00:00:00Z","peers":[{"id":"` + id + `","addrs":["/ip4/192.0.2.1/tcp/4001"]}]}`,
		`{"version":1,"peers":[{"id":"` + id + `","addrs":["/ip4/192.0.2.1/tcp/4001/p2p/` + id + `","x"]},{"id":"` + id + `","addrs":["/dns4/a.example/tcp/1"]}]}`,
		`{"version":1,"peers":[{"id":"QmBad","addrs":[]}]}`,
		`{"version":2}`,
		`{"version":1,"peers":[{"id":"` + id + `","addrs":["/ip4/192.0.2.1/tcp/1/p2p/` + id + `/p2p-circuit"]}]}`,
		// issue 13: more than a save writes, long values, duplicate keys, null
		`{"version":1,"peers":[{"id":"` + id + `","addrs":["` + strings.Join(tcpAddrs(40, 1000), `","`) + `"]}]}`,
		`{"version":1,"peers":[{"id":"` + strings.Repeat("Qm", 5000) + `","addrs":["/ip4/192.0.2.1/tcp/1"]}]}`,
		`{"version":1,"version":1,"peers":null}`,
		`{"version":1,"peers":[null,{"id":null,"addrs":null}]}`,
		`{"version":1,"peers":[{"id":"` + id + `","addrs":["/ip4/127.0.0.1/tcp/0` + strings.Repeat("/ws", 300) + `"]}]}`,
	} {
		f.Add([]byte(s))
	}
	var many []backupEntry
	for range maxBackupPeers + 5 {
		many = append(many, backupEntry{ID: testPeerID(f).String(), Addrs: []string{"/ip4/192.0.2.1/tcp/4001"}})
	}
	f.Add(backupJSON(f, many))
	f.Fuzz(func(t *testing.T, data []byte) {
		peers, err := decodeBackup(data)
		if err != nil {
			if !errors.Is(err, ErrCorruptBackup) {
				t.Fatalf("error %v does not wrap ErrCorruptBackup", err)
			}
			if peers != nil {
				t.Fatalf("peers %v returned with an error", peers)
			}
			return
		}
		if len(peers) == 0 {
			t.Fatal("no peers and no error")
		}
		if len(peers) > maxBackupPeers {
			t.Fatalf("%d peers loaded, more than a save writes (%d)", len(peers), maxBackupPeers)
		}
		for _, ai := range peers {
			if len(ai.Addrs) > maxBackupAddrs {
				t.Fatalf("%d addresses of %s loaded, more than a save writes (%d)", len(ai.Addrs), ai.ID, maxBackupAddrs)
			}
		}
		enc, err := encodeBackup(peers, time.Unix(0, 0))
		if err != nil {
			t.Fatalf("encoding accepted peers %v: %v", peers, err)
		}
		again, err := decodeBackup(enc)
		if err != nil {
			t.Fatalf("decoding encoded peers: %v\n%s", err, enc)
		}
		if g, w := addrInfosString(again), addrInfosString(peers); g != w {
			t.Fatalf("round trip changed peers:\n%s\nwant\n%s", g, w)
		}
	})
}

// backupJSON renders entries (id → addrs) as a backup file.
func backupJSON(t testing.TB, entries []backupEntry) []byte {
	t.Helper()
	data, err := json.Marshal(backupFile{Version: backupVersion, Peers: entries})
	if err != nil {
		t.Fatal(err)
	}
	return data
}

func tcpAddrs(n, firstPort int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = "/ip4/192.0.2.1/tcp/" + strconv.Itoa(firstPort+i)
	}
	return out
}

// TestLoadBackupCapped: a file holding more than a save writes is used only up
// to maxBackupPeers peers of maxBackupAddrs addresses each (the issue's
// 10,000-entry file and 5,000-address entry), and a save never writes more.
func TestLoadBackupCapped(t *testing.T) {
	many := make([]backupEntry, 10_000)
	for i := range many {
		many[i] = backupEntry{ID: testPeerID(t).String(), Addrs: []string{"/ip4/192.0.2.1/tcp/4001"}}
	}
	one := testPeerID(t).String()
	twice := testPeerID(t).String()
	tests := []struct {
		name      string
		entries   []backupEntry
		peers     int
		addrsEach int
	}{
		{"10000 peers", many, maxBackupPeers, 1},
		{"5000 addresses", []backupEntry{{ID: one, Addrs: tcpAddrs(5000, 1000)}}, 1, maxBackupAddrs},
		{"a peer listed twice merges up to the cap", []backupEntry{{ID: twice, Addrs: tcpAddrs(maxBackupAddrs, 1000)}, {ID: twice, Addrs: tcpAddrs(maxBackupAddrs, 2000)}}, 1, maxBackupAddrs},
		{"bad entries past the cap are not looked at", append(many[:maxBackupPeers:maxBackupPeers], backupEntry{ID: "garbage"}), maxBackupPeers, 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "backup-peers.json")
			if err := os.WriteFile(path, backupJSON(t, tc.entries), 0o600); err != nil {
				t.Fatal(err)
			}
			got, err := loadBackup(path)
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != tc.peers {
				t.Fatalf("loaded %d peers, want %d", len(got), tc.peers)
			}
			for _, ai := range got {
				if len(ai.Addrs) != tc.addrsEach {
					t.Fatalf("peer %s loaded with %d addresses, want %d", ai.ID, len(ai.Addrs), tc.addrsEach)
				}
			}
		})
	}

	// The save side writes no more than the load side reads.
	var infos []peer.AddrInfo
	for range maxBackupPeers + 5 {
		infos = append(infos, peer.AddrInfo{ID: testPeerID(t), Addrs: maddrs(t, tcpAddrs(maxBackupAddrs+5, 1000)...)})
	}
	data, err := encodeBackup(infos, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	var f backupFile
	if err := json.Unmarshal(data, &f); err != nil {
		t.Fatal(err)
	}
	if len(f.Peers) != maxBackupPeers {
		t.Fatalf("saved %d peers, want %d", len(f.Peers), maxBackupPeers)
	}
	for _, e := range f.Peers {
		if len(e.Addrs) != maxBackupAddrs {
			t.Fatalf("saved %d addresses of %s, want %d", len(e.Addrs), e.ID, maxBackupAddrs)
		}
	}
}

// TestLoadBackupNotRegular: a FIFO or device at the backup path is refused at
// once (it used to hang the node for good), as an unreadable file.
func TestLoadBackupNotRegular(t *testing.T) {
	fifo := filepath.Join(t.TempDir(), "backup-peers.json")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, path := range []string{fifo, "/dev/zero"} {
		done := make(chan error, 1)
		go func() { _, err := loadBackup(path); done <- err }()
		select {
		case err := <-done:
			if err == nil || !strings.Contains(err.Error(), "not a regular file") || !strings.Contains(err.Error(), path) || errors.Is(err, ErrCorruptBackup) {
				t.Errorf("loadBackup(%s) = %v; want a read error naming the path", path, err)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("loadBackup(%s) blocked", path)
		}
	}
}

// TestLoadBackupRemovesStaleTemps: loading removes the temp files a save
// killed midway left (its own pattern, its own directory), not fresh ones
// and not other files; the backup itself is read unchanged.
func TestLoadBackupRemovesStaleTemps(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "backup-peers.json")
	if err := saveBackup(path, []peer.AddrInfo{{ID: testPeerID(t), Addrs: maddrs(t, "/ip4/192.0.2.1/tcp/4001")}}); err != nil {
		t.Fatal(err)
	}
	before, _ := os.ReadFile(path)
	old := time.Now().Add(-time.Hour)
	mk := func(name string, mtime time.Time) {
		p := filepath.Join(dir, name)
		os.WriteFile(p, []byte("{partial"), 0o600)
		os.Chtimes(p, mtime, mtime)
	}
	mk(".backup-peers.json.tmp-111", old)
	mk(".backup-peers.json.tmp-222", old)
	mk(".backup-peers.json.tmp-333", time.Now())
	mk(".identity.key.tmp-444", old)
	mk("notes.txt", old)
	if _, err := loadBackup(path); err != nil {
		t.Fatal(err)
	}
	got := strings.Join(dirEntries(t, dir), " ")
	if want := ".backup-peers.json.tmp-333 .identity.key.tmp-444 backup-peers.json notes.txt"; got != want {
		t.Fatalf("directory holds %q, want %q", got, want)
	}
	if after, _ := os.ReadFile(path); !bytes.Equal(before, after) {
		t.Fatal("backup file changed")
	}
}
