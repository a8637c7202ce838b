package bootstrap

import (
	"errors"
	"fmt"
	"strings"

	dht "github.com/libp2p/go-libp2p-kad-dht"
	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"

	"github.com/chiral-network/go-libp2p-resilience/internal/fsutil"
	"github.com/chiral-network/go-libp2p-resilience/internal/textutil"
)

// MaxAddrsFileSize bounds what ParseAddrsFile reads (some ten thousand addresses).
const MaxAddrsFileSize = 1 << 20

// Reasons an entry is rejected; they appear in the error message.
const (
	reasonEmpty       = "empty entry"
	reasonNotMaddr    = "not a multiaddr"
	reasonNoPeerID    = "no /p2p peer id at the end"
	reasonBadPeerID   = "bad peer id"
	reasonNoTransport = "no address before /p2p (a bare peer id cannot be dialled)"
)

// ParseAddrs parses bootstrap peer addresses. Every entry must be a
// multiaddr that ends in /p2p/<peer id>, for example
//
//	/ip4/192.0.2.1/tcp/4001/p2p/12D3KooW...
//	/dnsaddr/bootstrap.libp2p.io/p2p/QmNnoo...
//
// Surrounding whitespace is trimmed. Several addresses of one peer are
// merged into one peer.AddrInfo; peers keep the order in which they first
// appear, and a peer's addresses keep their order with duplicates dropped.
// /dnsaddr (and /dns*) entries are kept as they are: libp2p resolves them
// when it dials.
//
// The first bad entry stops parsing with an error that wraps ErrBadAddr
// and names the entry's 0-based index, its text and the reason: empty
// entry, not a multiaddr, no /p2p peer id, bad peer id, or no address
// before /p2p. An empty or nil slice yields an empty result and no error;
// whether zero peers is acceptable is the caller's decision.
func ParseAddrs(addrs []string) ([]peer.AddrInfo, error) {
	var m addrMerger
	for i, s := range addrs {
		id, a, err := parseAddr(s)
		if err != nil {
			return nil, fmt.Errorf("%w: entry %d %s: %w", ErrBadAddr, i, textutil.Quote(s), err)
		}
		m.add(id, a)
	}
	return m.infos, nil
}

// ParseAddrsFile reads bootstrap peer addresses from the file at path,
// one multiaddr per line, in the format ParseAddrs accepts. Blank lines and
// everything from a '#' to the end of a line are ignored ('#' never occurs
// in a multiaddr). A bad line yields an error that wraps ErrBadAddr and
// names path:line (1-based), the line's text and the reason. A file that
// cannot be read yields an error naming path that does not wrap ErrBadAddr;
// so does anything but a regular file (the open never blocks on a FIFO) and
// a file larger than MaxAddrsFileSize. A file with no addresses yields an
// empty result and no error. Error messages quote at most
// textutil.MaxQuoted bytes of a line.
func ParseAddrsFile(path string) ([]peer.AddrInfo, error) {
	data, err := fsutil.ReadFile(path, MaxAddrsFileSize)
	if err != nil {
		return nil, fmt.Errorf("bootstrap: read address file %s: %w", path, err)
	}
	var m addrMerger
	for n, line := range strings.Split(string(data), "\n") {
		if i := strings.IndexByte(line, '#'); i >= 0 {
			line = line[:i]
		}
		line = strings.TrimSpace(line)
		if line == "" {
			continue
		}
		id, a, err := parseAddr(line)
		if err != nil {
			return nil, fmt.Errorf("%w: %s:%d %s: %w", ErrBadAddr, path, n+1, textutil.Quote(line), err)
		}
		m.add(id, a)
	}
	return m.infos, nil
}

// DefaultBootstrapPeers returns the public Amino DHT (IPFS) bootstrap
// peers that go-libp2p-kad-dht ships (dht.DefaultBootstrapPeers), one
// AddrInfo per peer, as a fresh slice the caller may modify. Most of them
// are /dnsaddr addresses that libp2p resolves when it dials. Use them for
// nodes that join the public network; private networks pass their own list.
func DefaultBootstrapPeers() []peer.AddrInfo {
	var m addrMerger
	for _, a := range dht.DefaultBootstrapPeers {
		transport, id := peer.SplitAddr(a)
		if id == "" || len(transport) == 0 {
			continue // cannot happen for kad-dht's list; never hand out an undiallable entry
		}
		m.add(id, transport)
	}
	return m.infos
}

// parseAddr parses one trimmed-on-entry bootstrap address into its peer ID
// and transport part. Errors carry the reason only; callers add position.
func parseAddr(s string) (peer.ID, ma.Multiaddr, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return "", nil, errors.New(reasonEmpty)
	}
	a, err := ma.NewMultiaddr(s)
	if err != nil {
		if idErr := peerIDError(s); idErr != nil {
			return "", nil, fmt.Errorf("%s: %w", reasonBadPeerID, idErr)
		}
		return "", nil, fmt.Errorf("%s: %w", reasonNotMaddr, err)
	}
	transport, id := peer.SplitAddr(a)
	if id == "" {
		return "", nil, errors.New(reasonNoPeerID)
	}
	if err := id.Validate(); err != nil {
		return "", nil, fmt.Errorf("%s: %w", reasonBadPeerID, err)
	}
	if len(transport) == 0 {
		return "", nil, errors.New(reasonNoTransport)
	}
	return id, transport, nil
}

// peerIDError tells whether a string the multiaddr parser rejected failed
// only because of its trailing /p2p (or legacy /ipfs) component: it returns
// the peer-ID decoding error when the part before that component parses
// (or is empty) and the component's value is missing or not a peer ID, and
// nil otherwise.
func peerIDError(s string) error {
	s = strings.TrimRight(s, "/")
	var value string // stays empty when s ends with the bare protocol name
	prefix, ok := cutP2P(s)
	if !ok {
		i := strings.LastIndexByte(s, '/')
		if i < 0 {
			return nil
		}
		value = s[i+1:]
		if prefix, ok = cutP2P(s[:i]); !ok {
			return nil
		}
	}
	if prefix != "" {
		if _, err := ma.NewMultiaddr(prefix); err != nil {
			return nil
		}
	}
	_, err := decodePeerID(value)
	return err
}

// cutP2P cuts a trailing /p2p or /ipfs protocol name off s.
func cutP2P(s string) (prefix string, ok bool) {
	for _, name := range []string{"/p2p", "/ipfs"} {
		if p, found := strings.CutSuffix(s, name); found {
			return p, true
		}
	}
	return s, false
}

// decodePeerID decodes a peer ID in either text form (base58 multihash or
// libp2p-key CID) with the same checks the multiaddr /p2p component
// applies, so every ID it accepts can be put back into a /p2p multiaddr.
func decodePeerID(s string) (peer.ID, error) {
	if s == "" {
		return "", peer.ErrEmptyPeerID
	}
	c, err := ma.NewComponent("p2p", s)
	if err != nil {
		return "", err
	}
	return peer.ID(c.RawValue()), nil
}

// addrMerger collects addresses into one AddrInfo per peer, keeping first
// appearance order and dropping duplicate addresses.
type addrMerger struct {
	infos []peer.AddrInfo
	index map[peer.ID]int
}

func (m *addrMerger) add(id peer.ID, addrs ...ma.Multiaddr) {
	if m.index == nil {
		m.index = make(map[peer.ID]int)
	}
	i, ok := m.index[id]
	if !ok {
		i = len(m.infos)
		m.index[id] = i
		m.infos = append(m.infos, peer.AddrInfo{ID: id})
	}
	for _, a := range addrs {
		if !ma.Contains(m.infos[i].Addrs, a) {
			m.infos[i].Addrs = append(m.infos[i].Addrs, a)
		}
	}
}
