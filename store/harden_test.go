package store

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

// fileSize is the database's size on disk with its write-ahead log.
func fileSize(t *testing.T, path string) int64 {
	t.Helper()
	var n int64
	for _, p := range []string{path, path + "-wal"} {
		fi, err := os.Stat(p)
		if err == nil {
			n += fi.Size()
		} else if !os.IsNotExist(err) {
			t.Fatal(err)
		}
	}
	return n
}

// TestPlainBodiesBounded: unencrypted messages, which any occupant can
// send as large and as fast as the server relays them, cannot grow the
// store without bound. The review's measurement (61 bodies of 250 KB
// added 15 MB) is repeated: each body is kept as its first 4 KiB; a room
// keeps the newest 1000 plain entries, none older than 30 days (removed
// within the hour); encrypted messages are untouched.
func TestPlainBodiesBounded(t *testing.T) {
	path := tempPath(t)
	clk := newClock()
	st, err := Open(path, &Options{Now: clk.now})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { st.Close() }()
	a := mustAccount(t, st, "alice@example.org")
	const room = "room@muc.example.org"
	now := clk.now()
	// An encrypted message, and an old plain one (40 days).
	if _, err := st.Append(ctx, a.ID, room, Entry{Kind: "message", ID: msgID(1), Author: "bob@example.org/r", Text: strings.Repeat("é", 100<<10), At: now}); err != nil {
		t.Fatal(err)
	}
	if _, err := st.Append(ctx, a.ID, room, Entry{Kind: "plain", Author: "eve@example.org/r", Text: "old", At: now.Add(-40 * 24 * time.Hour)}); err != nil {
		t.Fatal(err)
	}
	before := fileSize(t, path)
	big := strings.Repeat("ab€", 250_000/5) // 250 KB, multi-byte characters
	start := time.Now()
	for i := range 61 {
		e, err := st.Append(ctx, a.ID, room, Entry{Kind: "plain", Author: "eve@example.org/r", Text: big + strconv.Itoa(i), At: now})
		if err != nil {
			t.Fatal(err)
		}
		if len(e.Text) > 4096 || !utf8.ValidString(e.Text) || !strings.HasPrefix(big, e.Text) {
			t.Fatalf("plain entry kept %d bytes", len(e.Text))
		}
	}
	grew := fileSize(t, path) - before
	t.Logf("61 plain bodies of 250 KB: the store grew by %d bytes in %v", grew, time.Since(start).Round(time.Millisecond))
	if grew > 2<<20 {
		t.Fatalf("61 plain bodies of 250 KB grew the store by %d bytes", grew)
	}
	// The age bound applies at most hourly while the store is open (and
	// at every open): an hour later, the next plain entry applies it.
	clk.mu.Lock()
	clk.t = clk.t.Add(time.Hour)
	clk.mu.Unlock()
	if _, err := st.Append(ctx, a.ID, room, Entry{Kind: "plain", Author: "eve@example.org/r", Text: "an hour later", At: now}); err != nil {
		t.Fatal(err)
	}
	page, err := st.History(ctx, a.ID, room, 0, 1000)
	if err != nil {
		t.Fatal(err)
	}
	if page[0].Kind != "message" || len(page[0].Text) != 200<<10 {
		t.Fatalf("the encrypted message was not kept whole: %q, %d bytes", page[0].Kind, len(page[0].Text))
	}
	for _, e := range page {
		if e.Text == "old" {
			t.Fatal("a plain entry older than 30 days was kept")
		}
	}
	// A flood of small ones: the newest 1000 stay, the order kept.
	for i := range 1100 {
		if _, err := st.Append(ctx, a.ID, room, Entry{Kind: "plain", Author: "eve@example.org/r", Text: fmt.Sprint("flood ", i), At: now}); err != nil {
			t.Fatal(err)
		}
	}
	page, err = st.History(ctx, a.ID, room, 0, 1000)
	if err != nil {
		t.Fatal(err)
	}
	plain := 0
	for _, e := range page {
		if e.Kind == "plain" {
			plain++
		}
	}
	if plain != 1000 || page[len(page)-1].Text != "flood 1099" || page[len(page)-1000].Text != "flood 100" {
		t.Fatalf("%d plain entries kept, the newest %q", plain, page[len(page)-1].Text)
	}
	if older, _ := st.History(ctx, a.ID, room, page[0].Seq, 10); len(older) != 1 || older[0].Kind != "message" {
		t.Fatalf("before the plain entries: %d entries", len(older))
	}
}

// TestFileModesFixedOnOpen: the store and its -wal and -shm files are
// made mode 0600 at every open, not only when they are created.
func TestFileModesFixedOnOpen(t *testing.T) {
	path := tempPath(t)
	st := openAt(t, path)
	mustAccount(t, st, "alice@example.org")
	st.Close()
	for _, p := range []string{path, path + "-wal", path + "-shm"} {
		if err := os.WriteFile(p, nil, 0o644); err != nil && p != path {
			t.Fatal(err)
		}
		if err := os.Chmod(p, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	st = openAt(t, path)
	defer st.Close()
	for _, p := range []string{path, path + "-wal", path + "-shm"} {
		fi, err := os.Stat(p)
		if err != nil || fi.Mode().Perm() != 0o600 {
			t.Errorf("%s: mode %v, %v; want 0600", p, fi.Mode(), err)
		}
	}
}

// TestPassphraseEnvScrubbed: a passphrase read from the environment is
// no longer readable in /proc/PID/environ (the process's initial
// environment, which the kernel reads from the process's stack) nor in Go's
// copy of it. The child process gets the variable in its initial
// environment, reads it, and waits while the parent reads its environ.
func TestPassphraseEnvScrubbed(t *testing.T) {
	if os.Getenv("MPENC_SCRUB_CHILD") == "1" {
		scrubChild()
		return
	}
	const secret = "correct horse battery staple 8d19"
	cmd := exec.Command(os.Args[0], "-test.run=^TestPassphraseEnvScrubbed$")
	cmd.Env = append(os.Environ(), "MPENC_SCRUB_CHILD=1", "MPENC_TEST_SCRUB="+secret, "MPENC_TEST_OTHER=stays")
	in, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Wait()
	defer in.Close()
	r := bufio.NewReader(out)
	line, err := r.ReadString('\n')
	if err != nil {
		t.Fatalf("child: %v", err)
	}
	if strings.TrimSpace(line) != "read "+secret {
		t.Fatalf("child said %q", line)
	}
	environ, err := os.ReadFile(fmt.Sprintf("/proc/%d/environ", cmd.Process.Pid))
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(environ), "correct horse") {
		t.Errorf("/proc/PID/environ still holds the passphrase")
	}
	if !strings.Contains(string(environ), "\x00MPENC_TEST_OTHER=stays\x00") && !strings.HasPrefix(string(environ), "MPENC_TEST_OTHER=stays\x00") {
		t.Errorf("/proc/PID/environ lost another variable")
	}
	in.Close()
	rest, _ := io.ReadAll(r)
	if !strings.Contains(string(rest), "go copy zeroed") {
		t.Errorf("child: %q", rest)
	}
}

func scrubChild() {
	v := os.Getenv("MPENC_TEST_SCRUB") // Go's copy, as PassphraseFromEnv finds it
	p, err := PassphraseFromEnv("MPENC_TEST_SCRUB")
	if err != nil {
		fmt.Println("error", err)
		return
	}
	fmt.Println("read", string(p))
	io.ReadAll(os.Stdin) // the parent reads /proc/PID/environ meanwhile
	if strings.Trim(v, "\x00") == "" && os.Getenv("MPENC_TEST_SCRUB") == "" {
		fmt.Println("go copy zeroed")
	} else {
		fmt.Printf("go copy %q\n", v)
	}
}
