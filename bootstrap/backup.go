package bootstrap

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	logging "github.com/ipfs/go-log/v2"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"

	"github.com/chiral-network/go-libp2p-resilience/internal/fsutil"
	"github.com/chiral-network/go-libp2p-resilience/internal/textutil"
)

// logger is the package logger.
var logger = logging.Logger("resilience/bootstrap")

const (
	// backupVersion is the format version saveBackup writes and
	// loadBackup accepts.
	backupVersion = 1
	// maxBackupPeers is how many backup peers are kept (kubo keeps 20):
	// saveBackup writes at most this many, loadBackup uses at most this many.
	maxBackupPeers = 20
	// maxBackupAddrs is how many addresses of one backup peer are kept:
	// saveBackup writes at most this many (a public node announces about
	// ten: IPv4 and IPv6, TCP, QUIC, WebTransport, WebRTC), loadBackup
	// uses at most this many, so a forged file cannot aim hundreds of dials.
	maxBackupAddrs = 16
	// maxBackupFileSize bounds what loadBackup reads: a file this module
	// writes holds maxBackupPeers peers and is a few KiB.
	maxBackupFileSize = 1 << 20
)

// backupFile is the JSON layout of the backup peers file:
//
//	{"version":1,"saved_at":"2006-01-02T15:04:05Z","peers":[{"id":"12D3KooW...","addrs":["/ip4/192.0.2.1/tcp/4001"]}]}
//
// Addresses are stored without the /p2p suffix.
type backupFile struct {
	Version int           `json:"version"`
	SavedAt time.Time     `json:"saved_at"`
	Peers   []backupEntry `json:"peers"`
}

type backupEntry struct {
	ID    string   `json:"id"`
	Addrs []string `json:"addrs"`
}

// selectBackupPeers picks up to max peers worth saving as backup bootstrap
// peers, in the order of candidates (normally the routing table's peers):
// a candidate is taken when it is not h itself, not in exclude (the
// configured bootstrap peers), currently connected to h, and has at least
// one direct (non-relay) address in h's peerstore. Only the direct
// addresses are kept. max <= 0 selects nothing.
func selectBackupPeers(h host.Host, candidates []peer.ID, exclude map[peer.ID]struct{}, max int) []peer.AddrInfo {
	if max <= 0 {
		return nil
	}
	var out []peer.AddrInfo
	seen := make(map[peer.ID]struct{}, len(candidates))
	for _, id := range candidates {
		if len(out) == max {
			break
		}
		if _, dup := seen[id]; dup || id == h.ID() {
			continue
		}
		seen[id] = struct{}{}
		if _, skip := exclude[id]; skip {
			continue
		}
		if h.Network().Connectedness(id) != network.Connected {
			continue
		}
		addrs := directAddrs(h.Peerstore().Addrs(id))
		if len(addrs) == 0 {
			continue
		}
		out = append(out, peer.AddrInfo{ID: id, Addrs: addrs})
	}
	return out
}

// mergeBackupPeers returns fresh followed by peers from previous that are
// neither in fresh nor in exclude, up to max peers in all. A node that
// currently knows fewer than max good peers thereby keeps the ones it
// saved earlier (kubo does the same), instead of shrinking its backup.
func mergeBackupPeers(fresh, previous []peer.AddrInfo, exclude map[peer.ID]struct{}, max int) []peer.AddrInfo {
	if max <= 0 {
		return nil
	}
	out := make([]peer.AddrInfo, 0, min(max, len(fresh)+len(previous)))
	seen := make(map[peer.ID]struct{}, max)
	for _, list := range [][]peer.AddrInfo{fresh, previous} {
		for _, ai := range list {
			if len(out) == max {
				return out
			}
			if _, dup := seen[ai.ID]; dup {
				continue
			}
			if _, skip := exclude[ai.ID]; skip {
				continue
			}
			seen[ai.ID] = struct{}{}
			out = append(out, ai)
		}
	}
	return out
}

// directAddrs returns the addresses that do not go through a relay
// (contain no /p2p-circuit), as a new slice.
func directAddrs(addrs []ma.Multiaddr) []ma.Multiaddr {
	var out []ma.Multiaddr
	for _, a := range addrs {
		if len(a) > 0 && !isRelayAddr(a) {
			out = append(out, a)
		}
	}
	return out
}

func isRelayAddr(a ma.Multiaddr) bool {
	for _, c := range a {
		if c.Code() == ma.P_CIRCUIT {
			return true
		}
	}
	return false
}

// saveBackup writes peers to path as a backup file (see backupFile),
// atomically: it writes a temporary file in the same directory, syncs and
// closes it, renames it over path and syncs the directory, so path always
// holds either the old or the new complete content. The file has mode
// 0600; a missing parent directory is created with mode 0700.
//
// The first maxBackupPeers usable peers given are written, each with its
// first maxBackupAddrs direct addresses (loadBackup reads no more than
// that); peers whose ID is empty or invalid are left out, and so are relay
// addresses and peers left with no address. When no peer remains,
// saveBackup writes nothing and returns an error wrapping
// errNoBackupPeers: an existing file is replaced only by a non-empty
// backup. Errors name path. Concurrent calls for the same path are safe
// (the last rename wins).
func saveBackup(path string, peers []peer.AddrInfo) error {
	data, err := encodeBackup(peers, time.Now())
	if err == nil {
		err = writeFileAtomic(path, data)
	}
	if err != nil {
		return fmt.Errorf("bootstrap: save backup peers to %s: %w", path, err)
	}
	return nil
}

// encodeBackup renders the usable peers (see saveBackup) as the content
// of a backup file saved at savedAt, or returns errNoBackupPeers.
func encodeBackup(peers []peer.AddrInfo, savedAt time.Time) ([]byte, error) {
	f := backupFile{Version: backupVersion, SavedAt: savedAt.UTC().Truncate(time.Second)}
	for _, ai := range peers {
		if len(f.Peers) == maxBackupPeers {
			break
		}
		addrs := directAddrs(ai.Addrs)
		if id, err := decodePeerID(ai.ID.String()); err != nil || id != ai.ID || len(addrs) == 0 {
			continue
		}
		addrs = addrs[:min(len(addrs), maxBackupAddrs)]
		e := backupEntry{ID: ai.ID.String(), Addrs: make([]string, len(addrs))}
		for i, a := range addrs {
			e.Addrs[i] = a.String()
		}
		f.Peers = append(f.Peers, e)
	}
	if len(f.Peers) == 0 {
		return nil, errNoBackupPeers
	}
	data, err := json.MarshalIndent(f, "", "  ")
	if err != nil {
		return nil, err
	}
	return append(data, '\n'), nil
}

// writeFileAtomic replaces path with data: temporary file in the same
// directory, write, fsync, close, rename, fsync the directory. The
// temporary file is removed on failure.
func writeFileAtomic(path string, data []byte) (err error) {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(dir, fsutil.TempPattern(path))
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			_ = tmp.Close()
			_ = os.Remove(tmp.Name())
		}
	}()
	if err := tmp.Chmod(0o600); err != nil {
		return err
	}
	if _, err := tmp.Write(data); err != nil {
		return err
	}
	if err := tmp.Sync(); err != nil {
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return err
	}
	// The new content is in place; a failed directory sync only risks
	// losing the rename on power loss, which is worth a warning, not a
	// failed save.
	if err := syncDir(dir); err != nil {
		logger.Warnw("sync directory after saving backup peers", "dir", dir, "err", err)
	}
	return nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// loadBackup reads the backup peers saved at path by saveBackup.
//
//   - No file at path: (nil, nil).
//   - Unreadable file, or not a regular file (a FIFO, a device, a
//     directory; the open never blocks): an error naming path (not
//     ErrCorruptBackup).
//   - Content not usable: an error wrapping ErrCorruptBackup that names
//     path and the problem: larger than 1 MiB, not JSON, a version other
//     than 1, a peer entry whose id is missing or not a peer ID or that
//     lists no addresses, or no usable peer at all.
//
// It uses no more than a save writes: the first maxBackupPeers peers, each
// with its first maxBackupAddrs usable addresses; the rest is ignored with
// a warning (entries past the cap are not even checked).
//
// A single address that does not parse or goes through a relay is
// skipped (logged at Debug) rather than condemning the whole file: it
// may come from a newer multiaddr library, and the peer's other addresses
// are still good. A peer left with no address is dropped; a peer listed
// twice is merged. loadBackup never modifies the file, so the caller may
// log the error and carry on: the corrupt file stays until the next
// successful saveBackup replaces it.
//
// Before reading, loadBackup removes the temporary files of saveBackup's
// naming pattern (fsutil.TempPattern, in path's directory only) older than
// fsutil.StaleTempAge: leftovers of a process killed during a save.
func loadBackup(path string) ([]peer.AddrInfo, error) {
	if n, err := fsutil.RemoveStaleTemps(path, fsutil.StaleTempAge); err != nil {
		logger.Warnw("removing temporary files left by an interrupted save", "path", path, "removed", n, "err", err)
	} else if n > 0 {
		logger.Infow("removed temporary files left by an interrupted save", "path", path, "removed", n)
	}
	data, err := fsutil.ReadFile(path, maxBackupFileSize)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil, nil
	case errors.Is(err, fsutil.ErrTooLarge):
		return nil, fmt.Errorf("bootstrap: load backup peers from %s: %w: %w", path, ErrCorruptBackup, err)
	case err != nil:
		return nil, fmt.Errorf("bootstrap: load backup peers from %s: %w", path, err)
	}
	peers, err := decodeBackup(data)
	if err != nil {
		return nil, fmt.Errorf("bootstrap: load backup peers from %s: %w", path, err)
	}
	return peers, nil
}

// decodeBackup parses the content of a backup file; see loadBackup for
// the rules. Every error wraps ErrCorruptBackup.
func decodeBackup(data []byte) ([]peer.AddrInfo, error) {
	var f backupFile
	if err := json.Unmarshal(data, &f); err != nil {
		return nil, fmt.Errorf("%w: not valid JSON: %w", ErrCorruptBackup, err)
	}
	if f.Version != backupVersion {
		return nil, fmt.Errorf("%w: version %d, want %d", ErrCorruptBackup, f.Version, backupVersion)
	}
	var m addrMerger
	ignoredPeers, ignoredAddrs := 0, 0
	for i, e := range f.Peers {
		if len(m.infos) == maxBackupPeers {
			ignoredPeers = len(f.Peers) - i
			break
		}
		if e.ID == "" {
			return nil, fmt.Errorf("%w: peers[%d]: missing id", ErrCorruptBackup, i)
		}
		id, err := decodePeerID(e.ID)
		if err != nil {
			return nil, fmt.Errorf("%w: peers[%d]: bad id %s: %w", ErrCorruptBackup, i, textutil.Quote(e.ID), err)
		}
		if len(e.Addrs) == 0 {
			return nil, fmt.Errorf("%w: peers[%d] (%s): no addrs", ErrCorruptBackup, i, id)
		}
		var addrs []ma.Multiaddr
		for j, s := range e.Addrs {
			if len(addrs) == maxBackupAddrs {
				ignoredAddrs += len(e.Addrs) - j
				break
			}
			a, err := ma.NewMultiaddr(s)
			if err != nil {
				logger.Debugw("skipping unparsable backup address", "peer", id, "addr", textutil.Clip(s, textutil.MaxQuoted), "err", err)
				continue
			}
			if transport, aid := peer.SplitAddr(a); aid != "" {
				if aid != id {
					logger.Debugw("skipping backup address of another peer", "peer", id, "addr", textutil.Clip(s, textutil.MaxQuoted))
					continue
				}
				a = transport
			}
			if len(a) == 0 || isRelayAddr(a) {
				logger.Debugw("skipping relay or empty backup address", "peer", id, "addr", textutil.Clip(s, textutil.MaxQuoted))
				continue
			}
			addrs = append(addrs, a)
		}
		if len(addrs) == 0 {
			logger.Debugw("skipping backup peer without usable address", "peer", id)
			continue
		}
		m.add(id, addrs...)
	}
	if len(m.infos) == 0 {
		return nil, fmt.Errorf("%w: no usable peers", ErrCorruptBackup)
	}
	for i := range m.infos { // a peer listed twice may have merged past the cap
		if n := len(m.infos[i].Addrs); n > maxBackupAddrs {
			ignoredAddrs += n - maxBackupAddrs
			m.infos[i].Addrs = m.infos[i].Addrs[:maxBackupAddrs]
		}
	}
	if ignoredPeers > 0 || ignoredAddrs > 0 {
		logger.Warnw("backup peers file holds more than a save writes; using the first of them",
			"ignored_peers", ignoredPeers, "ignored_addrs", ignoredAddrs, "max_peers", maxBackupPeers, "max_addrs_per_peer", maxBackupAddrs)
	}
	return m.infos, nil
}
