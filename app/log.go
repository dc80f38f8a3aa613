package app

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"sync"
)

// The log files' bounds: a file is rotated when a write would take it past
// logMaxSize, and logKeep old files are kept (path.1 the newest), so a
// program's logs take at most (logKeep+1) × logMaxSize on disk. Variables
// so that tests can shrink them.
var (
	logMaxSize int64 = 10 << 20
	logKeep          = 3
)

// OpenLog opens the log file at path for appending, creating it (and its
// directory, mode 0700, if missing), and returns a writer that keeps it
// bounded: when a write would take the file past 10 MiB, it is renamed
// path.1 (path.1 becomes path.2, and so on; path.3 is dropped) and a new
// file started, so the logs never take more than 40 MiB. The file is made
// mode 0600 at every open and every rotation, whatever its mode was.
// Each Write goes whole into one file; the writer is safe for concurrent
// use (the commands' loggers write one line per call).
func OpenLog(path string) (io.WriteCloser, error) {
	if path == "" {
		return nil, errors.New("app: empty log path")
	}
	if err := privateDir(filepath.Dir(path)); err != nil {
		return nil, err
	}
	l := &logFile{path: path}
	if err := l.open(); err != nil {
		return nil, err
	}
	return l, nil
}

// privateDir creates dir, mode 0700, if it does not exist. A directory
// that exists is left as it is: it may be shared on purpose (a home
// directory, /var/log).
func privateDir(dir string) error {
	if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
		return err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("app: creating %s: %w", dir, err)
	}
	// MkdirAll's mode is filtered by the umask; make it exactly 0700.
	return os.Chmod(dir, 0o700)
}

// logFile is a size-capped, rotated log file.
type logFile struct {
	path string

	mu     sync.Mutex
	f      *os.File // nil after a failed rotation, until a write reopens it
	size   int64
	closed bool
}

// open opens (or creates) the current file, makes it private and notes
// its size.
func (l *logFile) open() error {
	f, err := os.OpenFile(l.path, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		return fmt.Errorf("app: log file: %w", err)
	}
	fi, err := f.Stat()
	if err == nil {
		err = f.Chmod(0o600)
	}
	if err != nil {
		f.Close()
		return fmt.Errorf("app: log file %s: %w", l.path, err)
	}
	l.f, l.size = f, fi.Size()
	return nil
}

// rotate closes the current file, shifts the old ones (path.N to
// path.N+1, the oldest dropped) and starts a new file.
func (l *logFile) rotate() error {
	if err := l.f.Close(); err != nil {
		return err
	}
	l.f = nil
	old := func(n int) string { return l.path + "." + strconv.Itoa(n) }
	if err := os.Remove(old(logKeep)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	for n := logKeep - 1; n >= 1; n-- {
		if err := os.Rename(old(n), old(n+1)); err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
	}
	if err := os.Rename(l.path, old(1)); err != nil {
		return err
	}
	return l.open()
}

// Write appends p to the file, rotating first if p would take it past
// the cap (a file is never left empty for a write larger than the cap:
// such a write goes whole into a new file).
func (l *logFile) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return 0, os.ErrClosed
	}
	if l.f == nil {
		// A rotation failed half-way: try to start a file again.
		if err := l.open(); err != nil {
			return 0, err
		}
	}
	if l.size > 0 && l.size+int64(len(p)) > logMaxSize {
		if err := l.rotate(); err != nil {
			return 0, fmt.Errorf("app: rotating the log %s: %w", l.path, err)
		}
	}
	n, err := l.f.Write(p)
	l.size += int64(n)
	return n, err
}

// Close closes the file.
func (l *logFile) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.closed = true
	if l.f == nil {
		return nil
	}
	err := l.f.Close()
	l.f = nil
	return err
}
