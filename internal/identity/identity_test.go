package identity

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

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
