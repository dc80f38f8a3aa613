package store

import (
	"context"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/mpenc/mpenc/transcript"
)

// fastKDF keeps tests quick; programs use DefaultKDF.
var fastKDF = KDFParams{Time: 1, MemoryKiB: 256, Threads: 1}

var ctx = context.Background()

// clock is a deterministic clock for the store. The store calls it from
// whichever goroutine uses it (TestConcurrentUse), as it does time.Now.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(time.Millisecond)
	return c.t
}

func newClock() *clock { return &clock{t: time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)} }

func tempPath(t *testing.T) string {
	t.Helper()
	return filepath.Join(t.TempDir(), "mpenc.db")
}

func openAt(t *testing.T, path string) *Store {
	t.Helper()
	st, err := Open(path, &Options{Now: newClock().now})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	return st
}

func openTemp(t *testing.T) *Store {
	t.Helper()
	st := openAt(t, tempPath(t))
	t.Cleanup(func() { st.Close() })
	return st
}

func mustAccount(t *testing.T, st *Store, jid string) Account {
	t.Helper()
	a, err := st.CreateAccount(ctx, jid, "nick")
	if err != nil {
		t.Fatalf("CreateAccount: %v", err)
	}
	return a
}

func msgID(n int) transcript.ID {
	var id transcript.ID
	id[0], id[1], id[2], id[19] = byte(n>>16), byte(n>>8), byte(n), 0xAA
	return id
}

// seqReader is a deterministic randomness source.
type seqReader struct{ n byte }

func (r *seqReader) Read(p []byte) (int, error) {
	for i := range p {
		r.n++
		p[i] = r.n
	}
	return len(p), nil
}
