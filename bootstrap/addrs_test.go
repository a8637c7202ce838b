package bootstrap_test

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	dht "github.com/libp2p/go-libp2p-kad-dht"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"

	"github.com/chiral-network/go-libp2p-resilience/bootstrap"
)

// newPeerID returns a fresh Ed25519 peer ID.
func newPeerID(t testing.TB) peer.ID {
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

// want is the expected form of one parsed peer: its ID and address strings.
type want struct {
	id    peer.ID
	addrs []string
}

func checkInfos(t *testing.T, got []peer.AddrInfo, wants []want) {
	t.Helper()
	if len(got) != len(wants) {
		t.Fatalf("got %d peers %v, want %d", len(got), got, len(wants))
	}
	for i, w := range wants {
		if got[i].ID != w.id {
			t.Errorf("peer %d: id %s, want %s", i, got[i].ID, w.id)
		}
		var addrs []string
		for _, a := range got[i].Addrs {
			addrs = append(addrs, a.String())
		}
		if strings.Join(addrs, " ") != strings.Join(w.addrs, " ") {
			t.Errorf("peer %d (%s): addrs %q, want %q", i, got[i].ID, addrs, w.addrs)
		}
	}
}

func TestParseAddrs(t *testing.T) {
	a, b := newPeerID(t), newPeerID(t)
	cidA := peer.ToCid(a).String()
	tests := []struct {
		name string
		in   []string
		want []want
	}{
		{"nil", nil, nil},
		{"one tcp", []string{"/ip4/192.0.2.1/tcp/4001/p2p/" + a.String()},
			[]want{{a, []string{"/ip4/192.0.2.1/tcp/4001"}}}},
		{"quic and ip6", []string{"/ip6/::1/udp/4001/quic-v1/p2p/" + a.String()},
			[]want{{a, []string{"/ip6/::1/udp/4001/quic-v1"}}}},
		{"dnsaddr kept", []string{"/dnsaddr/bootstrap.example.org/p2p/" + a.String()},
			[]want{{a, []string{"/dnsaddr/bootstrap.example.org"}}}},
		{"whitespace trimmed", []string{" \t/ip4/192.0.2.1/tcp/4001/p2p/" + a.String() + " \r\n"},
			[]want{{a, []string{"/ip4/192.0.2.1/tcp/4001"}}}},
		{"legacy ipfs and cid forms", []string{
			"/ip4/192.0.2.1/tcp/1/ipfs/" + a.String(),
			"/ip4/192.0.2.1/tcp/2/p2p/" + cidA,
		}, []want{{a, []string{"/ip4/192.0.2.1/tcp/1", "/ip4/192.0.2.1/tcp/2"}}}},
		{"merged in order of first appearance, duplicates dropped", []string{
			"/ip4/192.0.2.1/tcp/4001/p2p/" + a.String(),
			"/ip4/192.0.2.2/tcp/4001/p2p/" + b.String(),
			"/ip4/192.0.2.1/udp/4001/quic-v1/p2p/" + a.String(),
			"/ip4/192.0.2.1/tcp/4001/p2p/" + a.String(),
			"/dnsaddr/b.example.org/p2p/" + b.String(),
		}, []want{
			{a, []string{"/ip4/192.0.2.1/tcp/4001", "/ip4/192.0.2.1/udp/4001/quic-v1"}},
			{b, []string{"/ip4/192.0.2.2/tcp/4001", "/dnsaddr/b.example.org"}},
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := bootstrap.ParseAddrs(tc.in)
			if err != nil {
				t.Fatalf("ParseAddrs: %v", err)
			}
			checkInfos(t, got, tc.want)
		})
	}
}

func TestParseAddrsErrors(t *testing.T) {
	id := newPeerID(t).String()
	good := "/ip4/192.0.2.1/tcp/4001/p2p/" + id
	tests := []struct {
		name   string
		in     []string
		index  int    // index of the entry the error must name
		reason string // text the error must contain
	}{
		{"empty", []string{good, ""}, 1, "empty entry"},
		{"blank", []string{" \t "}, 0, "empty entry"},
		{"not a multiaddr", []string{good, good, "192.0.2.1:4001"}, 2, "not a multiaddr"},
		{"unknown protocol", []string{"/ip4/192.0.2.1/nosuchproto/4001/p2p/" + id}, 0, "not a multiaddr"},
		{"bad ip", []string{"/ip4/999.0.2.1/tcp/4001/p2p/" + id}, 0, "not a multiaddr"},
		{"no peer id", []string{"/ip4/192.0.2.1/tcp/4001"}, 0, "no /p2p peer id"},
		{"circuit without target id", []string{good + "/p2p-circuit"}, 0, "no /p2p peer id"},
		{"bad peer id", []string{"/ip4/192.0.2.1/tcp/4001/p2p/QmNotAPeerID"}, 0, "bad peer id"},
		{"bad legacy ipfs id", []string{"/ip4/192.0.2.1/tcp/4001/ipfs/12D3KooWbroken"}, 0, "bad peer id"},
		{"empty peer id", []string{"/ip4/192.0.2.1/tcp/4001/p2p/"}, 0, "bad peer id"},
		{"missing peer id value", []string{"/ip4/192.0.2.1/tcp/4001/p2p"}, 0, "bad peer id"},
		{"cid of wrong codec", []string{"/ip4/192.0.2.1/tcp/4001/p2p/bafybeigdyrzt5sfp7udm7hu76uh7y26nf3efuylqabf3oclgtqy55fbzdi"}, 0, "bad peer id"},
		{"bare peer id", []string{"/p2p/" + id}, 0, "no address before /p2p"},
		{"first bad entry wins", []string{good, "/ip4/192.0.2.1/tcp/1", ""}, 1, "no /p2p peer id"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := bootstrap.ParseAddrs(tc.in)
			if err == nil {
				t.Fatalf("ParseAddrs(%q) = %v, want error", tc.in, got)
			}
			if got != nil {
				t.Errorf("ParseAddrs returned peers %v with an error", got)
			}
			if !errors.Is(err, bootstrap.ErrBadAddr) {
				t.Errorf("error %v does not wrap ErrBadAddr", err)
			}
			msg := err.Error()
			for _, part := range []string{fmt.Sprintf("entry %d ", tc.index), fmt.Sprintf("%q", tc.in[tc.index]), tc.reason} {
				if !strings.Contains(msg, part) {
					t.Errorf("error %q does not contain %q", msg, part)
				}
			}
		})
	}
}

func TestParseAddrsFile(t *testing.T) {
	a, b := newPeerID(t), newPeerID(t)
	dir := t.TempDir()
	content := "# bootstrap peers\n" +
		"\n" +
		"/ip4/192.0.2.1/tcp/4001/p2p/" + a.String() + "  # primary\r\n" +
		"   \t\n" +
		"  /dnsaddr/b.example.org/p2p/" + b.String() + "\n" +
		"#/ip4/192.0.2.9/tcp/4001/p2p/" + b.String() + "\n" +
		"/ip4/192.0.2.1/udp/4001/quic-v1/p2p/" + a.String() // no final newline
	path := filepath.Join(dir, "peers.txt")
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	got, err := bootstrap.ParseAddrsFile(path)
	if err != nil {
		t.Fatalf("ParseAddrsFile: %v", err)
	}
	checkInfos(t, got, []want{
		{a, []string{"/ip4/192.0.2.1/tcp/4001", "/ip4/192.0.2.1/udp/4001/quic-v1"}},
		{b, []string{"/dnsaddr/b.example.org"}},
	})

	t.Run("only comments", func(t *testing.T) {
		path := filepath.Join(dir, "empty.txt")
		if err := os.WriteFile(path, []byte("# nothing\n\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		got, err := bootstrap.ParseAddrsFile(path)
		if err != nil || len(got) != 0 {
			t.Fatalf("ParseAddrsFile = %v, %v; want no peers, no error", got, err)
		}
	})
}

func TestParseAddrsFileErrors(t *testing.T) {
	id := newPeerID(t).String()
	dir := t.TempDir()
	tests := []struct {
		name    string
		content string
		parts   []string // texts the error must contain besides the path
	}{
		{"no peer id on line 3", "# c\n/ip4/192.0.2.1/tcp/1/p2p/" + id + "\n/ip4/192.0.2.1/tcp/2 # x\n", []string{":3 ", `"/ip4/192.0.2.1/tcp/2"`, "no /p2p peer id"}},
		{"bad peer id on line 1", "/ip4/192.0.2.1/tcp/1/p2p/QmBad\n", []string{":1 ", "bad peer id"}},
		{"garbage on line 2", "\nhello world\n", []string{":2 ", "not a multiaddr"}},
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(dir, fmt.Sprintf("peers%d.txt", i))
			if err := os.WriteFile(path, []byte(tc.content), 0o600); err != nil {
				t.Fatal(err)
			}
			_, err := bootstrap.ParseAddrsFile(path)
			if !errors.Is(err, bootstrap.ErrBadAddr) {
				t.Fatalf("error %v does not wrap ErrBadAddr", err)
			}
			for _, part := range append(tc.parts, path) {
				if !strings.Contains(err.Error(), part) {
					t.Errorf("error %q does not contain %q", err, part)
				}
			}
		})
	}

	t.Run("missing file", func(t *testing.T) {
		path := filepath.Join(dir, "missing.txt")
		_, err := bootstrap.ParseAddrsFile(path)
		if err == nil || !strings.Contains(err.Error(), path) {
			t.Fatalf("error %v does not name %s", err, path)
		}
		if errors.Is(err, bootstrap.ErrBadAddr) {
			t.Errorf("read error %v wraps ErrBadAddr", err)
		}
		if !errors.Is(err, os.ErrNotExist) {
			t.Errorf("read error %v does not wrap os.ErrNotExist", err)
		}
	})
}

func TestDefaultBootstrapPeers(t *testing.T) {
	// kad-dht's list has one address per peer, all distinct peers.
	got := bootstrap.DefaultBootstrapPeers()
	if len(got) != len(dht.DefaultBootstrapPeers) || len(got) == 0 {
		t.Fatalf("got %d peers, kad-dht lists %d addresses", len(got), len(dht.DefaultBootstrapPeers))
	}
	want, err := peer.AddrInfosFromP2pAddrs(dht.DefaultBootstrapPeers...)
	if err != nil {
		t.Fatal(err)
	}
	byID := make(map[peer.ID]peer.AddrInfo)
	for _, ai := range want {
		byID[ai.ID] = ai
	}
	dnsaddrs := 0
	for _, ai := range got {
		w, ok := byID[ai.ID]
		if !ok {
			t.Errorf("peer %s is not in kad-dht's list", ai.ID)
			continue
		}
		if len(ai.Addrs) != len(w.Addrs) || !ai.Addrs[0].Equal(w.Addrs[0]) {
			t.Errorf("peer %s: addrs %v, want %v", ai.ID, ai.Addrs, w.Addrs)
		}
		if _, err := ai.Addrs[0].ValueForProtocol(ma.P_DNSADDR); err == nil {
			dnsaddrs++
		}
	}
	if dnsaddrs == 0 {
		t.Error("no /dnsaddr entry kept")
	}

	// The result is the caller's to modify.
	got[0].Addrs = nil
	got[1] = peer.AddrInfo{}
	again := bootstrap.DefaultBootstrapPeers()
	if len(again[0].Addrs) == 0 || again[1].ID == "" {
		t.Error("modifying the returned slice changed the next result")
	}
}

// FuzzParseAddrs checks that ParseAddrs never panics, that every error
// wraps ErrBadAddr, and that what it accepts is well formed and survives a
// round trip through its /p2p string form.
func FuzzParseAddrs(f *testing.F) {
	id := "12D3KooWD3eckifWpRn9wQpMG9R9hX3sD158z7EqHWmweQAJU5SA"
	for _, s := range []string{
		"",
		"/ip4/192.0.2.1/tcp/4001/p2p/" + id,
		"/ip4/192.0.2.1/tcp/4001/p2p/" + id + "\n/dnsaddr/x.example/p2p/" + id,
		"/ip4/192.0.2.1/tcp/4001/p2p/QmBad",
		"/ip4/192.0.2.1/tcp/4001/p2p",
		"/p2p/" + id,
		"/ip4/192.0.2.1/tcp/4001/p2p/" + id + "/p2p-circuit/p2p/" + id,
		"/ip6/::1/udp/1/quic-v1/webtransport/certhash/uEiAkH5a4DPGKUuOBjYw0CgwjvcJCJMD2K_1aluKR_tpevQ/p2p/" + id,
		"/ipfs/" + id + "/ipfs",
		"not an address",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		infos, err := bootstrap.ParseAddrs(strings.Split(s, "\n"))
		if err != nil {
			if !errors.Is(err, bootstrap.ErrBadAddr) {
				t.Fatalf("error %v does not wrap ErrBadAddr", err)
			}
			if infos != nil {
				t.Fatalf("peers %v returned with error", infos)
			}
			return
		}
		var again []string
		seen := make(map[peer.ID]bool)
		for _, ai := range infos {
			if ai.ID.Validate() != nil || len(ai.Addrs) == 0 || seen[ai.ID] {
				t.Fatalf("bad result %v", infos)
			}
			seen[ai.ID] = true
			p2p, err := peer.AddrInfoToP2pAddrs(&ai)
			if err != nil {
				t.Fatalf("AddrInfoToP2pAddrs(%v): %v", ai, err)
			}
			for _, a := range p2p {
				again = append(again, a.String())
			}
		}
		infos2, err := bootstrap.ParseAddrs(again)
		if err != nil {
			t.Fatalf("re-parsing %q: %v", again, err)
		}
		if len(infos2) != len(infos) {
			t.Fatalf("re-parse gave %d peers, want %d", len(infos2), len(infos))
		}
	})
}
