package fsutil

import (
	"bytes"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestReadFile(t *testing.T) {
	dir := t.TempDir()
	regular := filepath.Join(dir, "regular")
	if err := os.WriteFile(regular, []byte("hello"), 0o600); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(dir, "link")
	if err := os.Symlink(regular, link); err != nil {
		t.Fatal(err)
	}
	fifo := filepath.Join(dir, "fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	fifoLink := filepath.Join(dir, "fifo-link")
	if err := os.Symlink(fifo, fifoLink); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, path string
		max        int64
		want       string // content, or error text
		is         error
	}{
		{"regular", regular, 5, "hello", nil},
		{"symlink followed", link, 100, "hello", nil},
		{"one byte over the cap", regular, 4, "larger than the limit of 4 bytes", ErrTooLarge},
		{"fifo does not block", fifo, 100, "not a regular file (a named pipe)", ErrNotRegular},
		{"link to a fifo", fifoLink, 100, "a named pipe", ErrNotRegular},
		{"directory", dir, 100, "not a regular file (a directory)", ErrNotRegular},
		{"char device", "/dev/zero", 1 << 20, "a character device", ErrNotRegular},
		{"missing", filepath.Join(dir, "nope"), 100, "no such file", fs.ErrNotExist},
	} {
		t.Run(tc.name, func(t *testing.T) {
			done := make(chan struct{})
			var data []byte
			var err error
			go func() { defer close(done); data, err = ReadFile(tc.path, tc.max) }()
			select {
			case <-done:
			case <-time.After(10 * time.Second):
				t.Fatal("ReadFile blocked")
			}
			if tc.is == nil {
				if err != nil || string(data) != tc.want {
					t.Fatalf("ReadFile = %q, %v; want %q", data, err, tc.want)
				}
				return
			}
			if !errors.Is(err, tc.is) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("ReadFile error = %v; want %v mentioning %q", err, tc.is, tc.want)
			}
			if strings.Contains(err.Error(), dir) {
				t.Fatalf("error repeats the path: %v", err)
			}
		})
	}
}

func TestSizeText(t *testing.T) {
	for n, want := range map[int64]string{1 << 20: "1 MiB", 64 << 10: "64 KiB", 300: "300 bytes", 1<<20 + 1: "1048577 bytes"} {
		if got := SizeText(n); got != want {
			t.Errorf("SizeText(%d) = %q, want %q", n, got, want)
		}
	}
}

func TestRemoveStaleTemps(t *testing.T) {
	dir := t.TempDir()
	target := filepath.Join(dir, "backup-peers.json")
	old := time.Now().Add(-2 * StaleTempAge)
	write := func(name string, mtime time.Time) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte("x"), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Chtimes(p, mtime, mtime); err != nil {
			t.Fatal(err)
		}
		return p
	}
	stale1 := write(".backup-peers.json.tmp-123", old)
	stale2 := write(".backup-peers.json.tmp-abc", old)
	fresh := write(".backup-peers.json.tmp-999", time.Now()) // maybe a write in progress
	keep := []string{
		fresh,
		write("backup-peers.json", old),
		write(".identity.key.tmp-1", old),          // another file's pattern
		write(".backup-peers.json.tmp-", old),      // pattern needs a suffix
		write("x.backup-peers.json.tmp-1", old),    // not a prefix match
		write(".backup-peers.json.tmpfile-1", old), // not the pattern
	}
	sub := filepath.Join(dir, ".backup-peers.json.tmp-dir")
	if err := os.Mkdir(sub, 0o700); err != nil {
		t.Fatal(err)
	}
	os.Chtimes(sub, old, old)
	keep = append(keep, sub)
	outside := t.TempDir()
	other := filepath.Join(outside, ".backup-peers.json.tmp-1")
	os.WriteFile(other, nil, 0o600)
	os.Chtimes(other, old, old)
	keep = append(keep, other)
	linkTarget := filepath.Join(outside, "precious")
	os.WriteFile(linkTarget, []byte("keep me"), 0o600)
	link := filepath.Join(dir, ".backup-peers.json.tmp-link")
	if err := os.Symlink(linkTarget, link); err != nil {
		t.Fatal(err)
	}
	keep = append(keep, link, linkTarget)

	n, err := RemoveStaleTemps(target, StaleTempAge)
	if err != nil || n != 2 {
		t.Fatalf("RemoveStaleTemps = %d, %v; want 2, nil", n, err)
	}
	for _, p := range []string{stale1, stale2} {
		if _, err := os.Lstat(p); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("%s not removed (%v)", p, err)
		}
	}
	for _, p := range keep {
		if _, err := os.Lstat(p); err != nil {
			t.Errorf("%s removed: %v", p, err)
		}
	}
	if data, _ := os.ReadFile(linkTarget); !bytes.Equal(data, []byte("keep me")) {
		t.Error("symlink target changed")
	}
	if n, err := RemoveStaleTemps(filepath.Join(dir, "missing-dir", "f"), 0); n != 0 || err != nil {
		t.Fatalf("missing dir: %d, %v", n, err)
	}
}

func TestTempPatternMatchesCreateTemp(t *testing.T) {
	dir := t.TempDir()
	target := filepath.Join(dir, "identity.key")
	f, err := os.CreateTemp(dir, TempPattern(target))
	if err != nil {
		t.Fatal(err)
	}
	f.Close()
	old := time.Now().Add(-time.Hour)
	os.Chtimes(f.Name(), old, old)
	if n, err := RemoveStaleTemps(target, StaleTempAge); n != 1 || err != nil {
		t.Fatalf("RemoveStaleTemps = %d, %v; want the CreateTemp file removed", n, err)
	}
}
