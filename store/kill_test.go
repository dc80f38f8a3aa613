package store

import (
	"bufio"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/mpenc/mpenc/internal/trusttest"
	"github.com/mpenc/mpenc/trust"
)

const (
	helperDBEnv    = "MPENC_STORE_HELPER_DB"
	helperRoundEnv = "MPENC_STORE_HELPER_ROUND"
	helperRoom     = "room@muc.example.org"
	helperAccount  = "alice@example.org"
)

// TestHelperWriter is the child process of TestKillMidWrite: it writes in
// a loop (history entries, and trust observations every few entries) and
// prints "committed <round> <i>" after each write returns. It stops by
// itself after a bounded number of writes or seconds. Run directly (no
// environment variable), it does nothing.
func TestHelperWriter(t *testing.T) {
	path := os.Getenv(helperDBEnv)
	if path == "" {
		return
	}
	round, _ := strconv.Atoi(os.Getenv(helperRoundEnv))
	st, err := Open(path, nil)
	if err != nil {
		fmt.Println("open failed:", err)
		os.Exit(2)
	}
	a, err := st.account(ctx, helperAccount)
	if err != nil {
		fmt.Println("account:", err)
		os.Exit(2)
	}
	ts := st.Trust(a.ID, trust.Config{})
	rng := rand.New(rand.NewPCG(uint64(round), 1))
	deadline := time.Now().Add(30 * time.Second)
	for i := 0; i < 20000 && time.Now().Before(deadline); i++ {
		// Entries of varied size, up to several pages, so a kill can land
		// in the middle of a multi-page write.
		text := fmt.Sprintf("round %d entry %d ", round, i) + strings.Repeat("x", rng.IntN(12000))
		if _, err := st.Append(ctx, a.ID, helperRoom, Entry{Kind: "message", ID: msgID(round<<14 | i), Author: "bob@example.org/r", Text: text}); err != nil {
			fmt.Println("append failed:", err)
			os.Exit(2)
		}
		if i%7 == 0 {
			if _, err := trusttest.Observe(ts, fmt.Sprintf("m%d-%d@example.org/r", round, i), trusttest.Key(byte(i%250+1))); err != nil {
				fmt.Println("observe failed:", err)
				os.Exit(2)
			}
		}
		fmt.Printf("committed %d %d %d\n", round, i, len(text))
	}
	st.Close()
}

// TestKillMidWrite: a process killed at any moment loses nothing it had
// committed. The test re-executes its own binary as TestHelperWriter,
// SIGKILLs it after a random short time, then reopens the database and
// checks every write the child reported, the trust records, and SQLite's
// integrity check. Several rounds run against the same file, so later
// rounds also recover from the earlier kills.
func TestKillMidWrite(t *testing.T) {
	path := tempPath(t)
	st := openAt(t, path)
	mustAccount(t, st, helperAccount)
	st.Close()

	// The kill delays are random; MPENC_KILL_SEED replays a run's delays
	// (the moment the kill lands still depends on scheduling).
	seed := uint64(time.Now().UnixNano())
	if s, err := strconv.ParseUint(os.Getenv("MPENC_KILL_SEED"), 10, 64); err == nil {
		seed = s
	}
	t.Logf("kill delays seeded with MPENC_KILL_SEED=%d", seed)
	rng := rand.New(rand.NewPCG(seed, 2))
	const rounds = 5
	total := 0
	for round := range rounds {
		delay := time.Duration(30+rng.IntN(400)) * time.Millisecond
		committed := runAndKill(t, path, round, delay)
		total += len(committed)

		st := openAt(t, path)
		if err := st.integrityCheck(ctx); err != nil {
			t.Fatalf("round %d: %v", round, err)
		}
		a, err := st.account(ctx, helperAccount)
		if err != nil {
			t.Fatal(err)
		}
		h := st.roomHistory(a.ID, helperRoom)
		ts := st.Trust(a.ID, trust.Config{})
		for _, c := range committed {
			e, err := h.message(ctx, msgID(round<<14|c.i))
			if err != nil {
				t.Fatalf("round %d: committed entry %d lost: %v", round, c.i, err)
			}
			if !strings.HasPrefix(e.Text, fmt.Sprintf("round %d entry %d ", round, c.i)) || len(e.Text) != c.size {
				t.Fatalf("round %d: entry %d damaged", round, c.i)
			}
			if c.i%7 == 0 {
				if _, ok, err := ts.Current(fmt.Sprintf("m%d-%d@example.org/r", round, c.i)); err != nil || !ok {
					t.Fatalf("round %d: trust record %d lost: %v", round, c.i, err)
				}
			}
		}
		t.Logf("round %d: killed after %v, %d writes committed and found", round, delay, len(committed))
		st.Close()
	}
	if total == 0 {
		t.Fatal("the child never committed anything: the test proves nothing")
	}
}

type commit struct{ i, size int }

// runAndKill starts the writer, waits for its first commit and then for
// delay, kills it with SIGKILL and returns the commits it reported in
// full lines.
func runAndKill(t *testing.T, path string, round int, delay time.Duration) []commit {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperWriter$", "-test.count=1")
	cmd.Env = append(os.Environ(), helperDBEnv+"="+path, helperRoundEnv+"="+strconv.Itoa(round))
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var (
		mu        sync.Mutex
		committed []commit
		first     = make(chan struct{})
		done      = make(chan struct{})
		once      sync.Once
	)
	go func() {
		defer close(done)
		r := bufio.NewReader(out)
		for {
			line, err := r.ReadString('\n')
			if err != nil {
				// A line cut by the kill has no newline: it is not a
				// report of a commit.
				if err != io.EOF {
					t.Errorf("reading the child: %v", err)
				}
				once.Do(func() { close(first) })
				return
			}
			var rd, i, size int
			if n, _ := fmt.Sscanf(line, "committed %d %d %d\n", &rd, &i, &size); n == 3 && rd == round {
				mu.Lock()
				committed = append(committed, commit{i, size})
				mu.Unlock()
				once.Do(func() { close(first) })
			} else if strings.Contains(line, "failed") || strings.HasPrefix(line, "account:") {
				t.Errorf("child: %s", line)
			}
		}
	}()
	select {
	case <-first:
	case <-time.After(60 * time.Second):
		t.Fatal("the child committed nothing in 60 s")
	}
	time.Sleep(delay)
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Logf("kill: %v (the child had finished)", err)
	}
	<-done
	werr := cmd.Wait()
	if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); !ok || !ws.Signaled() {
		t.Logf("round %d: the child was not killed mid-run (%v): it finished its bounded loop first", round, werr)
	}
	mu.Lock()
	defer mu.Unlock()
	return committed
}
