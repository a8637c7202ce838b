package identity

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestCreateLoad(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sub", "key")
	k, err := Create(path)
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("mode %v, %v", fi.Mode(), err)
	}
	got, err := Load(path)
	if err != nil || !got.Equals(k) {
		t.Fatalf("Load: %v", err)
	}
	before, _ := os.ReadFile(path)
	if _, err := Create(path); !errors.Is(err, fs.ErrExist) {
		t.Fatalf("Create over an existing key: %v", err)
	}
	after, _ := os.ReadFile(path)
	if string(before) != string(after) {
		t.Fatal("existing key file changed")
	}
	entries, _ := os.ReadDir(filepath.Dir(path))
	if len(entries) != 1 {
		t.Fatalf("temp files left: %v", entries)
	}
}

func TestLoadOrCreateConcurrent(t *testing.T) {
	path := filepath.Join(t.TempDir(), "key")
	var wg sync.WaitGroup
	ids := make([]string, 8)
	for i := range ids {
		wg.Go(func() {
			k, err := LoadOrCreate(path)
			if err != nil {
				t.Error(err)
				return
			}
			id, _ := PeerID(k)
			ids[i] = id.String()
		})
	}
	wg.Wait()
	for _, id := range ids {
		if id != ids[0] {
			t.Fatalf("concurrent LoadOrCreate produced different keys: %v", ids)
		}
	}
}

func TestLoadErrors(t *testing.T) {
	dir := t.TempDir()
	open := filepath.Join(dir, "open")
	if _, err := Create(open); err != nil {
		t.Fatal(err)
	}
	os.Chmod(open, 0o644)
	garbage := filepath.Join(dir, "garbage")
	os.WriteFile(garbage, []byte("not a key"), 0o600)
	tests := []struct {
		path, want string
	}{
		{open, "chmod 600"},
		{garbage, "not a libp2p private key"},
		{filepath.Join(dir, "missing"), "no such file"},
		{dir, "not a regular file"},
	}
	for _, tt := range tests {
		_, err := Load(tt.path)
		if err == nil || !strings.Contains(err.Error(), tt.want) || !strings.Contains(err.Error(), tt.path) {
			t.Errorf("Load(%s) = %v, want an error naming the file and %q", tt.path, err, tt.want)
		}
	}
	if _, err := Load(open); !errors.Is(err, ErrInsecureKeyFile) {
		t.Errorf("want ErrInsecureKeyFile, got %v", err)
	}
	// A path under a regular file cannot be created.
	if _, err := Create(filepath.Join(garbage, "key")); err == nil || !strings.Contains(err.Error(), garbage) {
		t.Errorf("Create under a file: %v", err)
	}
}

// Hostile paths: nothing blocks, nothing is created before a refusal, and the
// advice for an insecure symlinked key names the file chmod would change.
func TestHostilePaths(t *testing.T) {
	dir := t.TempDir()
	real := filepath.Join(dir, "real-key")
	if _, err := Create(real); err != nil {
		t.Fatal(err)
	}
	os.Chmod(real, 0o644)
	link := filepath.Join(dir, "link-key")
	if err := os.Symlink(real, link); err != nil {
		t.Fatal(err)
	}
	_, err := Load(link)
	if !errors.Is(err, ErrInsecureKeyFile) || !strings.Contains(err.Error(), "chmod 600 "+real) || !strings.Contains(err.Error(), "symlink to "+real) {
		t.Fatalf("Load(symlink to 0644 key) = %v; want advice naming %s", err, real)
	}

	fifo := filepath.Join(dir, "fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	big := filepath.Join(dir, "big")
	os.WriteFile(big, make([]byte, MaxKeyFileSize+1), 0o600)
	newDir := filepath.Join(dir, "newdir") + "/"
	for _, tc := range []struct{ path, want string }{
		{fifo, "not a regular file (a named pipe)"},
		{"/dev/zero", "a character device"},
		{big, "larger than the limit of 64 KiB"},
		{newDir, "names a directory"},
		{dir + "/.", "names a directory"},
	} {
		done := make(chan error, 1)
		go func() { _, err := LoadOrCreate(tc.path); done <- err }()
		select {
		case err := <-done:
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("LoadOrCreate(%s) = %v, want %q", tc.path, err, tc.want)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("LoadOrCreate(%s) blocked", tc.path)
		}
	}
	if _, err := os.Lstat(strings.TrimSuffix(newDir, "/")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("--identity dir/ created the directory (%v)", err)
	}
	if _, err := Create(newDir); err == nil {
		t.Error("Create(dir/) succeeded")
	}
	if _, err := os.Lstat(strings.TrimSuffix(newDir, "/")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Create(dir/) created the directory (%v)", err)
	}
}

// TestLoadOrCreateRemovesStaleTemps: leftovers of a killed key creation go at
// the next start; a fresh one (maybe another process writing) and other names stay.
func TestLoadOrCreateRemovesStaleTemps(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "identity.key")
	old := time.Now().Add(-time.Hour)
	mk := func(name string, mtime time.Time) string {
		p := filepath.Join(dir, name)
		os.WriteFile(p, []byte("partial"), 0o600)
		os.Chtimes(p, mtime, mtime)
		return p
	}
	stale := mk(".identity.key.tmp-12345", old)
	fresh := mk(".identity.key.tmp-67890", time.Now())
	other := mk(".backup-peers.json.tmp-1", old)
	if _, err := LoadOrCreate(path); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Lstat(stale); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("stale temp file kept: %v", err)
	}
	for _, p := range []string{fresh, other, path} {
		if _, err := os.Lstat(p); err != nil {
			t.Errorf("%s: %v", p, err)
		}
	}
}
