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

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
)

// ErrInsecureKeyFile is returned for a key file that group or others may read or write.
var ErrInsecureKeyFile = errors.New("identity: key file is accessible to group or others")

// Generate returns a new Ed25519 key.
func Generate() (crypto.PrivKey, error) {
	k, _, err := crypto.GenerateEd25519Key(rand.Reader)
	return k, err
}

// Load reads the key at path. It refuses a file with permission bits for group or
// others, saying how to fix it.
func Load(path string) (crypto.PrivKey, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("identity file %s: %w", path, err)
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("identity file %s: not a regular file", path)
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		return nil, fmt.Errorf("%w: %s has mode %04o; run: chmod 600 %s", ErrInsecureKeyFile, path, perm, path)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("identity file %s: %w", path, err)
	}
	k, err := crypto.UnmarshalPrivateKey(data)
	if err != nil {
		return nil, fmt.Errorf("identity file %s: not a libp2p private key: %w", path, err)
	}
	return k, nil
}

// Create generates a key and writes it to path (mode 0600, parent directory
// created with 0700). It never replaces an existing file.
func Create(path string) (crypto.PrivKey, error) {
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
func LoadOrCreate(path string) (crypto.PrivKey, error) {
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

// writeNew writes data to path atomically (temp file, fsync, link into place) and
// fails with fs.ErrExist rather than replace an existing file.
func writeNew(path string, data []byte) error {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("identity file %s: %w", path, err)
	}
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return fmt.Errorf("identity file %s: %w", path, err)
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return fmt.Errorf("identity file %s: %w", path, err)
	}
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return fmt.Errorf("identity file %s: %w", path, err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("identity file %s: %w", path, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("identity file %s: %w", path, err)
	}
	// link, unlike rename, fails if path exists: an existing key is never replaced.
	if err := os.Link(tmp.Name(), path); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return fmt.Errorf("identity file %s: %w (refusing to overwrite)", path, fs.ErrExist)
		}
		return fmt.Errorf("identity file %s: %w", path, err)
	}
	if d, err := os.Open(dir); err == nil {
		d.Sync()
		d.Close()
	}
	return nil
}
