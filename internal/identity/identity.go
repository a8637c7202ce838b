// Package identity loads and creates libp2p identity key files for the binaries
// of this module: a marshalled private key (crypto.MarshalPrivateKey) in a file
// only its owner may read. It is safe for concurrent use (it keeps no state).
package identity

import (
	"crypto/rand"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/chiral-network/go-libp2p-resilience/internal/fsutil"
	"github.com/chiral-network/go-libp2p-resilience/internal/textutil"
)

// ErrInsecureKeyFile is returned for a key file that group or others may read or write.
var ErrInsecureKeyFile = errors.New("identity: key file is accessible to group or others")

// MaxKeyFileSize bounds what Load reads: a marshalled Ed25519 key is 68 bytes,
// an RSA-8192 one about 4.8 KiB.
const MaxKeyFileSize = 64 << 10

// Generate returns a new Ed25519 key.
func Generate() (crypto.PrivKey, error) {
	k, _, err := crypto.GenerateEd25519Key(rand.Reader)
	return k, err
}

// Load reads the key at path. It refuses, with an error naming path: a path
// that ends in a separator, anything but a regular file after symlinks are
// followed (without blocking on a FIFO), a file larger than MaxKeyFileSize,
// and a file with permission bits for group or others (ErrInsecureKeyFile,
// saying how to fix it; for a symlink the advice names the file it points to,
// whose mode chmod would change).
func Load(path string) (crypto.PrivKey, error) {
	if err := checkPath(path); err != nil {
		return nil, err
	}
	f, fi, err := fsutil.OpenRegular(path)
	if err != nil {
		return nil, fileErr(path, err)
	}
	defer f.Close()
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		if target := linkTarget(path); target != "" {
			return nil, fmt.Errorf("%w: %s is a symlink to %s, which has mode %04o; run: chmod 600 %s", ErrInsecureKeyFile, shown(path), shown(target), perm, shown(target))
		}
		return nil, fmt.Errorf("%w: %s has mode %04o; run: chmod 600 %s", ErrInsecureKeyFile, shown(path), perm, shown(path))
	}
	data, err := fsutil.ReadOpened(f, fi, MaxKeyFileSize)
	if err != nil {
		return nil, fileErr(path, err)
	}
	k, err := crypto.UnmarshalPrivateKey(data)
	if err != nil {
		return nil, fileErr(path, fmt.Errorf("not a libp2p private key: %w", err))
	}
	return k, nil
}

// linkTarget returns the file path resolves to when path is a symlink, "" otherwise.
func linkTarget(path string) string {
	if fi, err := os.Lstat(path); err != nil || fi.Mode()&fs.ModeSymlink == 0 {
		return ""
	}
	target, err := filepath.EvalSymlinks(path)
	if err != nil {
		return ""
	}
	if abs, err := filepath.Abs(target); err == nil {
		target = abs
	}
	return target
}

// Create generates a key and writes it to path (mode 0600, parent directory
// created with 0700). It never replaces an existing file, and it checks path
// before creating anything: a path ending in a separator names a directory,
// not a key file, and is refused without creating that directory.
func Create(path string) (crypto.PrivKey, error) {
	if err := checkPath(path); err != nil {
		return nil, err
	}
	k, err := Generate()
	if err != nil {
		return nil, err
	}
	data, err := crypto.MarshalPrivateKey(k)
	if err != nil {
		return nil, err
	}
	if err := writeNew(path, data); err != nil {
		return nil, err
	}
	return k, nil
}

// LoadOrCreate loads the key at path, creating it if the file does not exist.
// First it removes temporary files of its own naming pattern (".<name>.tmp-*"
// next to path, older than fsutil.StaleTempAge) that a process killed while
// creating the key left behind; failing to remove them is not an error.
func LoadOrCreate(path string) (crypto.PrivKey, error) {
	if err := checkPath(path); err != nil {
		return nil, err
	}
	_, _ = fsutil.RemoveStaleTemps(path, fsutil.StaleTempAge)
	k, err := Load(path)
	if errors.Is(err, fs.ErrNotExist) {
		k, err = Create(path)
		if errors.Is(err, fs.ErrExist) { // created concurrently: use that one
			return Load(path)
		}
	}
	return k, err
}

// PeerID returns the peer ID of k.
func PeerID(k crypto.PrivKey) (peer.ID, error) { return peer.IDFromPrivateKey(k) }

// checkPath refuses paths that cannot name a key file.
func checkPath(path string) error {
	switch base := filepath.Base(path); {
	case path == "":
		return errors.New("identity file: empty path")
	case strings.HasSuffix(path, string(filepath.Separator)) || strings.HasSuffix(path, "/"),
		base == "." || base == "..":
		return fileErr(path, errors.New("names a directory, not a key file"))
	}
	return nil
}

func fileErr(path string, err error) error {
	return fmt.Errorf("identity file %s: %w", shown(path), err)
}

// shown is path for an error message, cut if it is absurdly long.
func shown(path string) string { return textutil.Clip(path, textutil.MaxQuoted) }

// writeNew writes data to path atomically (temp file, fsync, link into place) and
// fails with fs.ErrExist rather than replace an existing file.
func writeNew(path string, data []byte) error {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fileErr(path, err)
	}
	tmp, err := os.CreateTemp(dir, fsutil.TempPattern(path))
	if err != nil {
		return fileErr(path, err)
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return fileErr(path, err)
	}
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return fileErr(path, err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fileErr(path, err)
	}
	if err := tmp.Close(); err != nil {
		return fileErr(path, err)
	}
	// link, unlike rename, fails if path exists: an existing key is never replaced.
	if err := os.Link(tmp.Name(), path); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return fileErr(path, fmt.Errorf("%w (refusing to overwrite)", fs.ErrExist))
		}
		return fileErr(path, err)
	}
	if d, err := os.Open(dir); err == nil {
		d.Sync()
		d.Close()
	}
	return nil
}
