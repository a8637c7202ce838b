// Package fsutil reads the files the module's binaries are pointed at — config,
// bootstrap list, backup peers, identity key — as untrusted input, and cleans up
// after the atomic writes of the files they own.
//
// Reading never blocks and never holds more than a cap: a path is opened with
// O_NONBLOCK (a FIFO without a writer does not hang the process), the opened
// descriptor must be a regular file after symlinks are followed (fstat, so the
// check and the read see the same file; a device such as /dev/zero is refused),
// and at most a given number of bytes is read.
//
// Atomic writes put their content in a temporary file named by TempPattern next
// to the target before renaming or linking it into place; a process killed in
// between leaves that file behind, and RemoveStaleTemps removes such leftovers.
//
// The functions are safe for concurrent use (they keep no state).
package fsutil

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

var (
	// ErrNotRegular is wrapped by the error for a path that is not a regular
	// file (a directory, FIFO, device or socket); the error says which.
	ErrNotRegular = errors.New("not a regular file")
	// ErrTooLarge is wrapped by the error for a file larger than the cap the
	// caller gave; the error names the cap.
	ErrTooLarge = errors.New("larger than the limit")
)

// OpenRegular opens path for reading without blocking and returns it with its
// fstat information, or an error if it is not a regular file (wrapping
// ErrNotRegular and naming what it is). Symlinks are followed. Errors do not
// repeat path (callers name it with the flag it came from); an open error is
// the bare cause, so errors.Is(err, fs.ErrNotExist) works.
func OpenRegular(path string) (*os.File, fs.FileInfo, error) {
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, nil, bareCause(err)
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, nil, bareCause(err)
	}
	if !fi.Mode().IsRegular() {
		f.Close()
		return nil, nil, fmt.Errorf("%w (%s)", ErrNotRegular, kind(fi.Mode()))
	}
	return f, fi, nil
}

// ReadFile reads the regular file at path (see OpenRegular), refusing one of
// more than max bytes with an error that wraps ErrTooLarge and names max. It
// never reads more than max+1 bytes, even from a file that grows meanwhile.
func ReadFile(path string, max int64) ([]byte, error) {
	f, fi, err := OpenRegular(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return readCapped(f, fi.Size(), max)
}

// ReadOpened reads f, which OpenRegular returned with fi, as ReadFile does.
func ReadOpened(f *os.File, fi fs.FileInfo, max int64) ([]byte, error) {
	return readCapped(f, fi.Size(), max)
}

func readCapped(r io.Reader, size, max int64) ([]byte, error) {
	if size > max {
		return nil, tooLarge(max)
	}
	data, err := io.ReadAll(io.LimitReader(r, max+1))
	if err != nil {
		return nil, bareCause(err)
	}
	if int64(len(data)) > max {
		return nil, tooLarge(max)
	}
	return data, nil
}

func tooLarge(max int64) error {
	return fmt.Errorf("%w of %s", ErrTooLarge, SizeText(max))
}

// SizeText writes n bytes as "1 MiB", "64 KiB" or "300 bytes".
func SizeText(n int64) string {
	switch {
	case n >= 1<<20 && n%(1<<20) == 0:
		return fmt.Sprintf("%d MiB", n>>20)
	case n >= 1<<10 && n%(1<<10) == 0:
		return fmt.Sprintf("%d KiB", n>>10)
	default:
		return fmt.Sprintf("%d bytes", n)
	}
}

func kind(m fs.FileMode) string {
	switch {
	case m.IsDir():
		return "a directory"
	case m&fs.ModeNamedPipe != 0:
		return "a named pipe"
	case m&fs.ModeCharDevice != 0:
		return "a character device"
	case m&fs.ModeDevice != 0:
		return "a block device"
	case m&fs.ModeSocket != 0:
		return "a socket"
	default:
		return "mode " + m.String()
	}
}

// bareCause strips the *fs.PathError around err: callers name the path.
func bareCause(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

// TempPattern is the os.CreateTemp pattern of the temporary file an atomic
// write of path uses: ".<base>.tmp-*" in path's directory. RemoveStaleTemps
// removes leftovers of exactly this pattern.
func TempPattern(path string) string { return "." + filepath.Base(path) + ".tmp-*" }

// StaleTempAge is how old a temporary file must be before RemoveStaleTemps
// takes it for a crash leftover: an atomic write takes milliseconds, so an
// older file is not being written by a process that shares the directory.
const StaleTempAge = time.Minute

// RemoveStaleTemps removes the regular files in path's directory whose name
// matches TempPattern(path) and that were last modified more than olderThan
// ago (leftovers of a process killed during an atomic write of path). It
// looks at nothing else: not other names, not subdirectories, not symlinks.
// It returns how many it removed; a missing directory is not an error.
func RemoveStaleTemps(path string, olderThan time.Duration) (int, error) {
	dir := filepath.Dir(path)
	prefix := strings.TrimSuffix(TempPattern(path), "*")
	entries, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	removed := 0
	var errs []error
	for _, e := range entries {
		if !strings.HasPrefix(e.Name(), prefix) || len(e.Name()) == len(prefix) || !e.Type().IsRegular() {
			continue
		}
		fi, err := e.Info()
		if err != nil || time.Since(fi.ModTime()) < olderThan {
			continue // gone meanwhile, or possibly a write in progress
		}
		if err := os.Remove(filepath.Join(dir, e.Name())); err != nil && !errors.Is(err, fs.ErrNotExist) {
			errs = append(errs, err)
			continue
		}
		removed++
	}
	return removed, errors.Join(errs...)
}
