package session_test

import (
	"context"
	"fmt"
	"log"
	"time"

	"github.com/mpenc/mpenc/channel/memchan"
	"github.com/mpenc/mpenc/crypto"
	"github.com/mpenc/mpenc/session"
)

// Two members talk in an in-memory room: alice founds the session, bob
// enters and alice includes him (AutoInclude), alice says hello and bob
// reads it from his notices.
func Example() {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	room := memchan.NewRoom(time.Millisecond)
	defer room.Close()

	// Both identity keys are known to both: a trust store would do this.
	dir := &session.MemoryDirectory{}
	start := func(self string) *session.Session {
		key, err := crypto.GenerateSigningKey(nil)
		if err != nil {
			log.Fatal(err)
		}
		dir.Set(self, key.Public())
		s, err := session.New(session.Config{Self: self, Identity: key, Directory: dir,
			Timing: session.LoopbackTiming(), AutoInclude: true}, room.Conn(self))
		if err != nil {
			log.Fatal(err)
		}
		go s.Run(ctx)
		return s
	}
	alice := start("alice@example.org/laptop")
	defer alice.Close()
	bob := start("bob@example.org/phone")
	defer bob.Close()
	go func() {
		for range alice.Notices() { // notices must be drained
		}
	}()

	if err := alice.Join(ctx); err != nil { // alone: she founds the session
		log.Fatal(err)
	}
	if err := bob.Join(ctx); err != nil { // returns once alice included him
		log.Fatal(err)
	}
	// alice sends once she sees bob in her session too.
	for {
		r, err := alice.Roster(ctx)
		if err != nil {
			log.Fatal(err)
		}
		if len(r.Members) == 2 {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	if _, err := alice.Send(ctx, "hello"); err != nil {
		log.Fatal(err)
	}
	for n := range bob.Notices() {
		if n.Kind == session.Message {
			fmt.Printf("%v from %s: %s\n", n.Kind, n.Author, n.Text)
			break
		}
	}
	// Output:
	// Message from alice@example.org/laptop: hello
}
