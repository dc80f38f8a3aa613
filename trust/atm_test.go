package trust_test

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mpenc/mpenc/crypto"
	"github.com/mpenc/mpenc/internal/trusttest"
	"github.com/mpenc/mpenc/trust"
)

// atmDevice is one endpoint of the XEP-0450 narrative: a device with its
// own trust store.
type atmDevice struct {
	name string // "A1"
	full string // its full JID
	key  crypto.PublicKey
	s    *trust.Store
}

// atmWorld delivers trust messages between devices at once, in order,
// and records each as "A1→B1 alice@example.org: trust A2" (statements
// sorted) for the step's expected set.
type atmWorld struct {
	t     *testing.T
	devs  []*atmDevice
	clock *trusttest.Clock
	sent  []string
	queue []trust.Vouch // what Config.OnVouch handed over, not delivered yet
}

func newATMWorld(t *testing.T, names ...string) *atmWorld {
	w := &atmWorld{t: t, clock: trusttest.NewClock()}
	for i, n := range names {
		acct := "alice@example.org"
		if n[0] == 'B' {
			acct = "bob@example.com"
		}
		d := &atmDevice{name: n, full: acct + "/" + n, key: trusttest.Key(byte(i + 1))}
		d.s = trust.New(&trust.Memory{}, trust.Config{Now: w.clock.Now, Self: d.full, SelfKey: d.key,
			OnVouch: func(v trust.Vouch) { w.queue = append(w.queue, v) }})
		w.devs = append(w.devs, d)
	}
	return w
}

func (w *atmWorld) dev(name string) *atmDevice {
	for _, d := range w.devs {
		if d.name == name {
			return d
		}
	}
	w.t.Fatalf("no device %s", name)
	return nil
}

func (w *atmWorld) byKey(k crypto.PublicKey) *atmDevice {
	for _, d := range w.devs {
		if d.key == k {
			return d
		}
	}
	return nil
}

// meet makes every device observe every other's key, as in a room they
// share (blind trust before verification).
func (w *atmWorld) meet() {
	for _, d := range w.devs {
		for _, o := range w.devs {
			if o != d {
				if _, err := trusttest.Observe(d.s, o.full, o.key); err != nil {
					w.t.Fatal(err)
				}
			}
		}
	}
}

// decide makes the user of device by verify ("verify") or distrust
// ("distrust") device of's key, then delivers what the store handed to
// Config.OnVouch; the deliveries must hand over nothing more (ATM sends
// only after the user's decisions).
func (w *atmWorld) decide(by, op, of string) {
	w.t.Helper()
	d, o := w.dev(by), w.dev(of)
	jid := trust.Bare(o.full)
	var err error
	switch op {
	case "verify":
		_, err = d.s.Verify(jid, o.key)
	case "distrust":
		_, err = d.s.Distrust(jid, o.key)
	}
	if err != nil {
		w.t.Fatal(err)
	}
	vs := w.queue
	w.queue = nil
	defer func() {
		if len(w.queue) > 0 {
			w.t.Fatalf("receiving trust messages made %d more", len(w.queue))
		}
	}()
	for _, v := range vs {
		to := w.byKey(v.To.Key)
		if to == nil || trust.Bare(to.full) != v.To.JID {
			w.t.Fatalf("%s vouches to an unknown device %s", by, v.To.JID)
		}
		// The property XEP-0450 rests on: a trust message goes only to
		// a device whose key the sender has authenticated at send time.
		if st := w.state(d, to); st != trust.Authenticated {
			w.t.Fatalf("%s sends a trust message to %s, whose key it holds %v", by, to.name, st)
		}
		from, toJID, _, stmts, err := trust.ReadTrustMessage(v.Payload)
		if err != nil || from != d.full || toJID != trust.Bare(to.full) {
			w.t.Fatalf("%s's message to %s: from %q to %q, %v", by, to.name, from, toJID, err)
		}
		var parts []string
		for _, st := range stmts {
			verb := "distrust"
			if st.Trust {
				verb = "trust"
			}
			parts = append(parts, fmt.Sprintf("%s: %s %s", st.Owner, verb, w.byKey(st.Key).name))
		}
		slices.Sort(parts)
		w.sent = append(w.sent, fmt.Sprintf("%s→%s %s", by, to.name, strings.Join(parts, ", ")))
		if _, err := to.s.HandleTrustMessage(d.full, d.key, v.Payload); err != nil {
			w.t.Fatalf("%s handling %s's message: %v", to.name, by, err)
		}
	}
}

// step checks the messages sent since the last step.
func (w *atmWorld) step(name string, want ...string) {
	w.t.Helper()
	slices.Sort(w.sent)
	slices.Sort(want)
	if !slices.Equal(w.sent, want) {
		w.t.Errorf("%s: sent\n\t%s\nwant\n\t%s", name, strings.Join(w.sent, "\n\t"), strings.Join(want, "\n\t"))
	}
	w.sent = nil
}

func (w *atmWorld) state(at, of *atmDevice) trust.State {
	recs, err := at.s.Keys(trust.Bare(of.full))
	if err != nil {
		w.t.Fatal(err)
	}
	for _, r := range recs {
		if r.Key == of.key {
			return r.State
		}
	}
	return 0
}

// matrix is every device's state of every other's key: "A1: A2
// authenticated, …" one line per device.
func (w *atmWorld) matrix() string {
	var lines []string
	for _, d := range w.devs {
		var cells []string
		for _, o := range w.devs {
			if o != d {
				cells = append(cells, fmt.Sprintf("%s %v", o.name, w.state(d, o)))
			}
		}
		lines = append(lines, d.name+": "+strings.Join(cells, ", "))
	}
	return strings.Join(lines, "\n")
}

// TestATMNarrative replays XEP-0450's use cases (§3, "Alice has the
// endpoints A1, A2 and A3. Bob has the endpoint B1. A1 has already
// authenticated A2's key."), in its order, with the trust messages each
// step sends and the trust matrix at the end. The devices have met
// (each has seen the others' keys, blindly trusted), as in a room.
func TestATMNarrative(t *testing.T) {
	w := newATMWorld(t, "A1", "A2", "A3", "B1")
	w.meet()
	const a, b = "alice@example.org", "bob@example.com"

	w.decide("A1", "verify", "A2")
	// Nobody else has an authenticated key at A1: nothing to tell.
	w.step("A1 authenticates A2")

	// §4.1: A1 authenticates B1: B1's key to its own authenticated
	// devices, its own authenticated keys to B1. Neither A2 nor B1 has
	// authenticated A1: both park.
	w.decide("A1", "verify", "B1")
	w.step("A1 authenticates B1",
		"A1→A2 "+b+": trust B1",
		"A1→B1 "+a+": trust A2")
	if st := w.state(w.dev("A2"), w.dev("B1")); st != trust.BlindlyTrusted {
		t.Fatalf("A2 applied a message from an unauthenticated A1: B1 is %v", st)
	}

	// "A2 authenticates B1's key by the authentication message from A1
	// as soon as A2 authenticated A1's key." A2's own verification of
	// A1 sends, as §4.2 has it: A1's key to every device A2 has
	// authenticated (B1, just vouched for), everything it has
	// authenticated to A1.
	w.decide("A2", "verify", "A1")
	w.step("A2 authenticates A1",
		"A2→B1 "+a+": trust A1",
		"A2→A1 "+b+": trust B1")
	if st := w.state(w.dev("A2"), w.dev("B1")); st != trust.Authenticated {
		t.Fatalf("A2 did not apply A1's parked message: B1 is %v", st)
	}

	// "B1 authenticates A2's key by the authentication message from A1
	// as soon as B1 authenticated A1's key." B1 has no other device.
	w.decide("B1", "verify", "A1")
	w.step("B1 authenticates A1")
	if st := w.state(w.dev("B1"), w.dev("A2")); st != trust.Authenticated {
		t.Fatalf("B1 did not apply A1's parked message: A2 is %v", st)
	}

	// §4.2: A2 authenticates A3: A3's key to A1 and B1, A1's and B1's
	// keys to A3 (which parks them until it authenticates A2).
	w.decide("A2", "verify", "A3")
	w.step("A2 authenticates A3",
		"A2→A1 "+a+": trust A3",
		"A2→B1 "+a+": trust A3",
		"A2→A3 "+a+": trust A1, "+b+": trust B1")
	w.decide("A3", "verify", "A2")
	w.step("A3 authenticates A2",
		"A3→A1 "+a+": trust A2",
		"A3→B1 "+a+": trust A2",
		"A3→A2 "+a+": trust A1, "+b+": trust B1")

	// §4.3: A1 distrusts A3: to every other authenticated device.
	w.decide("A1", "distrust", "A3")
	w.step("A1 distrusts A3",
		"A1→A2 "+a+": distrust A3",
		"A1→B1 "+a+": distrust A3")
	// §4.4: A1 distrusts B1: to its own authenticated devices only (A3
	// is distrusted now).
	w.decide("A1", "distrust", "B1")
	w.step("A1 distrusts B1",
		"A1→A2 "+b+": distrust B1")

	want := strings.Join([]string{
		"A1: A2 authenticated, A3 distrusted, B1 distrusted",
		"A2: A1 authenticated, A3 distrusted, B1 distrusted",
		"A3: A1 authenticated, A2 authenticated, B1 authenticated",
		"B1: A1 authenticated, A2 authenticated, A3 distrusted",
	}, "\n")
	if got := w.matrix(); got != want {
		t.Fatalf("trust matrix\n%s\nwant\n%s", got, want)
	}

	// Why A2 distrusts B1: A1's word, and A1 was verified by A2's user.
	why, err := w.dev("A2").s.Why(b, w.dev("B1").key)
	if err != nil {
		t.Fatal(err)
	}
	var lines []string
	for _, e := range why {
		lines = append(lines, e.String())
	}
	text := strings.Join(lines, "\n")
	for _, s := range []string{"first key of the account", "verified automatically", "vouched for by " + w.dev("A1").full,
		"distrusted automatically", "on the word of " + w.dev("A1").full, "verified by you"} {
		if !strings.Contains(text, s) {
			t.Errorf("Why(B1) at A2 lacks %q:\n%s", s, text)
		}
	}
}

// TestATMManualVerifications: n devices of one account are all
// authenticated to each other after n−1 mutual verifications (XEP-0450
// §2), whichever devices the user pairs: each with the first (a star),
// or each with the one before (a chain).
func TestATMManualVerifications(t *testing.T) {
	for _, shape := range []string{"star", "chain"} {
		for _, n := range []int{2, 3, 5, 8} {
			t.Run(fmt.Sprintf("%s/%d", shape, n), func(t *testing.T) {
				var names []string
				for i := 1; i <= n; i++ {
					names = append(names, fmt.Sprintf("A%d", i))
				}
				w := newATMWorld(t, names...)
				w.meet()
				manual := 0
				for i := 2; i <= n; i++ {
					other := "A1"
					if shape == "chain" {
						other = fmt.Sprintf("A%d", i-1)
					}
					me := fmt.Sprintf("A%d", i)
					// One verification is mutual: both users confirm
					// the same words.
					w.decide(other, "verify", me)
					w.decide(me, "verify", other)
					manual++
				}
				for _, d := range w.devs {
					for _, o := range w.devs {
						if o != d && w.state(d, o) != trust.Authenticated {
							t.Fatalf("after %d verifications:\n%s", manual, w.matrix())
						}
					}
				}
				if manual != n-1 {
					t.Fatalf("%d manual verifications for %d devices", manual, n)
				}
			})
		}
	}
}

// TestATMReceiveRules covers each rule of receiving (XEP-0450 §4, §5 and
// docs/PROTOCOL.md "Trust messages") on its own.
func TestATMReceiveRules(t *testing.T) {
	const a, b, c = "alice@example.org", "bob@example.com", "carol@example.net"
	setup := func(t *testing.T) (*atmWorld, *atmDevice, *atmDevice) {
		w := newATMWorld(t, "A1", "A2", "B1")
		w.meet()
		a1, b1 := w.dev("A1"), w.dev("B1")
		if _, err := a1.s.Verify(b, b1.key); err != nil {
			t.Fatal(err)
		}
		return w, a1, b1
	}
	send := func(t *testing.T, w *atmWorld, from, to *atmDevice, stmts ...trust.Statement) ([]trust.Event, error) {
		p, err := trust.WriteTrustMessage(from.full, trust.Bare(to.full), w.clock.Now(), stmts)
		if err != nil {
			t.Fatal(err)
		}
		return to.s.HandleTrustMessage(from.full, from.key, p)
	}
	third := trusttest.Key(50)

	t.Run("contact speaks of another account", func(t *testing.T) {
		w, a1, b1 := setup(t)
		evs, err := send(t, w, b1, a1, trust.Statement{Owner: c, Key: third, Trust: true})
		if err != nil || len(evs) != 0 {
			t.Fatalf("%v, %v", evs, err)
		}
		if recs, _ := a1.s.Keys(c); len(recs) != 0 {
			t.Fatalf("a contact's word about a third account recorded: %+v", recs)
		}
	})
	t.Run("contact speaks of its own account", func(t *testing.T) {
		w, a1, b1 := setup(t)
		evs, err := send(t, w, b1, a1, trust.Statement{Owner: b, Key: third, Trust: true})
		if err != nil || len(evs) != 1 || evs[0].Key != third || evs[0].By != b1.key || evs[0].Member != b1.full {
			t.Fatalf("%v, %v", evs, err)
		}
		// A key never seen is recorded, authenticated, for when it
		// appears (XEP-0450 §5.2).
		if d, _ := trusttest.Observe(a1.s, b+"/B2", third); d.Kind != trust.KeyKnown || !d.Trusted {
			t.Fatalf("the vouched key appears: %v", d)
		}
	})
	t.Run("own device speaks of anyone", func(t *testing.T) {
		w, a1, _ := setup(t)
		a2 := w.dev("A2")
		if _, err := a1.s.Verify(a, a2.key); err != nil {
			t.Fatal(err)
		}
		evs, err := send(t, w, a2, a1, trust.Statement{Owner: c, Key: third, Trust: true})
		if err != nil || len(evs) != 1 {
			t.Fatalf("%v, %v", evs, err)
		}
	})
	t.Run("unauthenticated sender is parked", func(t *testing.T) {
		w, a1, _ := setup(t)
		a2 := w.dev("A2")
		evs, err := send(t, w, a2, a1, trust.Statement{Owner: c, Key: third, Trust: true})
		if err != nil || len(evs) != 0 {
			t.Fatalf("%v, %v", evs, err)
		}
		rec, err := a1.s.Verify(a, a2.key)
		if err != nil || rec.State != trust.Authenticated {
			t.Fatal(err)
		}
		recs, _ := a1.s.Keys(c)
		if len(recs) != 1 || recs[0].State != trust.Authenticated || recs[0].Cause.String() != "vouched" {
			t.Fatalf("after A2 is verified: %+v", recs)
		}
	})
	t.Run("distrusted sender's parked statements dropped", func(t *testing.T) {
		w, a1, _ := setup(t)
		a2 := w.dev("A2")
		if _, err := send(t, w, a2, a1, trust.Statement{Owner: c, Key: third, Trust: true}); err != nil {
			t.Fatal(err)
		}
		if _, err := a1.s.Distrust(a, a2.key); err != nil {
			t.Fatal(err)
		}
		if _, err := a1.s.Verify(a, a2.key); err != nil {
			t.Fatal(err)
		}
		if recs, _ := a1.s.Keys(c); len(recs) != 0 {
			t.Fatalf("a distrusted sender's parked word applied: %+v", recs)
		}
	})
	t.Run("distrusted sender dropped", func(t *testing.T) {
		w, a1, _ := setup(t)
		a2 := w.dev("A2")
		if _, err := a1.s.Distrust(a, a2.key); err != nil {
			t.Fatal(err)
		}
		evs, err := send(t, w, a2, a1, trust.Statement{Owner: c, Key: third, Trust: true})
		if err != nil || len(evs) != 0 {
			t.Fatalf("%v, %v", evs, err)
		}
		if _, err := a1.s.Verify(a, a2.key); err != nil { // even if the user changes their mind later
			t.Fatal(err)
		}
		if recs, _ := a1.s.Keys(c); len(recs) != 0 {
			t.Fatalf("a distrusted device's word kept: %+v", recs)
		}
	})
	t.Run("older than the last decision", func(t *testing.T) {
		w, a1, b1 := setup(t)
		old := w.clock.Now()
		if _, err := a1.s.Verify(b, trusttest.Key(51)); err != nil {
			t.Fatal(err)
		}
		p, _ := trust.WriteTrustMessage(b1.full, a, old, []trust.Statement{{Owner: b, Key: trusttest.Key(51), Trust: false}})
		evs, err := a1.s.HandleTrustMessage(b1.full, b1.key, p)
		if err != nil || len(evs) != 0 {
			t.Fatalf("a replayed distrust applied: %v, %v", evs, err)
		}
	})
	t.Run("manual distrust is sticky", func(t *testing.T) {
		w, a1, b1 := setup(t)
		if _, err := a1.s.Distrust(b, third); err != nil {
			t.Fatal(err)
		}
		evs, err := send(t, w, b1, a1, trust.Statement{Owner: b, Key: third, Trust: true})
		if err != nil || len(evs) != 1 || evs[0].Kind.String() != "vouch-refused" {
			t.Fatalf("%v, %v", evs, err)
		}
		if recs, _ := a1.s.Keys(b); w.state(a1, &atmDevice{full: b + "/x", key: third}) != trust.Distrusted {
			t.Fatalf("manual distrust overturned: %+v", recs)
		}
		// A distrust by the same device is applied to a key the user
		// verified (distrust always applies).
		if _, err := a1.s.Verify(b, trusttest.Key(52)); err != nil {
			t.Fatal(err)
		}
		if evs, err := send(t, w, b1, a1, trust.Statement{Owner: b, Key: trusttest.Key(52)}); err != nil || len(evs) != 1 {
			t.Fatalf("%v, %v", evs, err)
		}
	})
	t.Run("a failed verification is sticky and not told", func(t *testing.T) {
		w, a1, b1 := setup(t)
		a2 := w.dev("A2")
		if _, err := a1.s.Verify(a, a2.key); err != nil {
			t.Fatal(err)
		}
		w.queue = nil
		if _, err := a1.s.DistrustMismatch(b, b1.key); err != nil {
			t.Fatal(err)
		}
		if len(w.queue) != 0 {
			t.Fatalf("a failed verification sent %d trust messages", len(w.queue))
		}
		third := trusttest.Key(53)
		if _, err := a1.s.Verify(b, third); err != nil {
			t.Fatal(err)
		}
		w.queue = nil
		// Another own device vouches for the key that failed: refused.
		evs, err := send(t, w, a2, a1, trust.Statement{Owner: b, Key: b1.key, Trust: true})
		if err != nil || len(evs) != 1 || evs[0].Kind.String() != "vouch-refused" {
			t.Fatalf("%v, %v", evs, err)
		}
		why, _ := a1.s.Why(b, b1.key)
		if last := why[len(why)-1].String(); !strings.Contains(last, "not applied, because it is distrusted here") {
			t.Fatalf("why: %q", last)
		}
		if !strings.Contains(why[len(why)-2].String(), "a live verification with it failed") {
			t.Fatalf("why: %q", why[len(why)-2].String())
		}
	})
	t.Run("a device that left is distrusted, told and sticky", func(t *testing.T) {
		w := newATMWorld(t, "A1", "A2", "A3")
		w.meet()
		a1, a2, a3 := w.dev("A1"), w.dev("A2"), w.dev("A3")
		for _, d := range []*atmDevice{a2, a3} {
			if _, err := a1.s.Verify(a, d.key); err != nil {
				t.Fatal(err)
			}
		}
		w.queue = nil
		if _, err := a1.s.DistrustLeft(a, a3.key); err != nil {
			t.Fatal(err)
		}
		if w.state(a1, a3) != trust.Distrusted {
			t.Fatal("not distrusted")
		}
		// Told to the other own device, as a distrust by the user is.
		told := false
		for _, v := range w.queue {
			told = told || v.To.Key == a2.key
		}
		if !told {
			t.Fatalf("the distrust of a device that left was not told to A2: %d messages", len(w.queue))
		}
		// A trust message vouching for it again is refused.
		evs, err := send(t, w, a2, a1, trust.Statement{Owner: a, Key: a3.key, Trust: true})
		if err != nil || len(evs) != 1 || evs[0].Kind.String() != "vouch-refused" {
			t.Fatalf("%v, %v", evs, err)
		}
		why, _ := a1.s.Why(a, a3.key)
		if !strings.Contains(why[len(why)-2].String(), "left your device group") {
			t.Fatalf("why: %q", why[len(why)-2].String())
		}
	})
	t.Run("our own key", func(t *testing.T) {
		w, a1, _ := setup(t)
		a2 := w.dev("A2")
		if _, err := a1.s.Verify(a, a2.key); err != nil {
			t.Fatal(err)
		}
		evs, err := send(t, w, a2, a1, trust.Statement{Owner: a, Key: a1.key, Trust: false})
		if err != nil || len(evs) != 0 {
			t.Fatalf("a statement about our own key: %v, %v", evs, err)
		}
	})
	t.Run("not from the channel's device", func(t *testing.T) {
		w, a1, b1 := setup(t)
		p, _ := trust.WriteTrustMessage(b+"/other", a, w.clock.Now(), []trust.Statement{{Owner: b, Key: third, Trust: true}})
		if _, err := a1.s.HandleTrustMessage(b1.full, b1.key, p); err == nil {
			t.Fatal("an envelope from another device accepted")
		}
		p, _ = trust.WriteTrustMessage(b1.full, c, w.clock.Now(), []trust.Statement{{Owner: b, Key: third, Trust: true}})
		if _, err := a1.s.HandleTrustMessage(b1.full, b1.key, p); err == nil {
			t.Fatal("an envelope for another account accepted")
		}
	})
	t.Run("parking is bounded", func(t *testing.T) {
		w, a1, _ := setup(t)
		a2 := w.dev("A2")
		var stmts []trust.Statement
		for i := range trust.MaxStatements {
			stmts = append(stmts, trust.Statement{Owner: c, Key: trusttest.Key(byte(i)), Trust: true})
		}
		// Distinct keys: the parking space holds MaxParked statements
		// from one account; each message carries MaxStatements.
		for i := range trust.MaxParked / trust.MaxStatements {
			if _, err := send(t, w, a2, a1, stmts...); err != nil {
				t.Fatalf("message %d: %v", i, err)
			}
			for j := range stmts {
				stmts[j].Owner = fmt.Sprintf("x%d@example.org", i)
			}
		}
		if _, err := send(t, w, a2, a1, stmts...); err == nil {
			t.Fatal("more than MaxParked statements parked")
		}
	})
}

// FuzzTrustMessage: the envelope decoder never panics, and what it
// accepts encodes back to an envelope it reads the same.
func FuzzTrustMessage(f *testing.F) {
	at := trusttest.NewClock().Now()
	ok, _ := trust.WriteTrustMessage("alice@example.org/A1", "bob@example.com", at, []trust.Statement{
		{Owner: "alice@example.org", Key: trusttest.Key(1), Trust: true},
		{Owner: "bob@example.com", Key: trusttest.Key(2)},
	})
	f.Add(ok)
	f.Add([]byte(`<content xmlns='urn:xmpp:sce:1'><rpad>xx</rpad><time stamp='2030-01-02T03:04:05Z'/><from jid='a@b/c'/><to jid='a@b'/><payload>` +
		`<trust-message xmlns='urn:xmpp:tm:1' usage='urn:xmpp:atm:1' encryption='https://github.com/mpenc/mpenc/ns/identity/1'><key-owner jid='a@b'>` +
		`<trust>6850019d7ed0feb6d3823072498ceb4f616c6025586f8f666dc6b9c81ef7e0a4</trust></key-owner></trust-message></payload></content>`))
	f.Add([]byte(`<content xmlns='urn:xmpp:sce:1'><payload><trust-message xmlns='urn:xmpp:tm:1'><key-owner xmlns='evil' jid='a@b'/></trust-message></payload></content>`))
	f.Fuzz(func(t *testing.T, p []byte) {
		from, to, at, stmts, err := trust.ReadTrustMessage(p)
		if err != nil {
			return
		}
		if len(stmts) > trust.MaxStatements {
			t.Fatalf("%d statements accepted", len(stmts))
		}
		q, err := trust.WriteTrustMessage(from, to, at, stmts)
		if err != nil {
			t.Fatalf("accepted %q, cannot write it back: %v", p, err)
		}
		from2, to2, at2, stmts2, err := trust.ReadTrustMessage(q)
		if err != nil || from2 != from || to2 != to || !at2.Equal(at) || !slices.Equal(stmts, stmts2) {
			t.Fatalf("%q → %q reads back differently: %v", p, q, err)
		}
	})
}

// TestTrustMessageRefused: the envelopes the decoder refuses, each for
// one reason, and the one it reads.
func TestTrustMessageRefused(t *testing.T) {
	key := trusttest.Key(1)
	b64 := func(k crypto.PublicKey) string {
		p, _ := trust.WriteTrustMessage("a@b/c", "a@b", time.Unix(0, 0), []trust.Statement{{Owner: "a@b", Key: k, Trust: true}})
		s := string(p)
		i := strings.Index(s, "<trust>") + len("<trust>")
		return s[i : i+strings.Index(s[i:], "<")]
	}(key)
	env := func(inner string) []byte {
		return []byte(`<content xmlns='urn:xmpp:sce:1'><time stamp='2030-01-02T03:04:05Z'/><from jid='a@b/c'/><to jid='a@b'/><payload>` + inner + `</payload></content>`)
	}
	tm := func(owners string) string {
		return `<trust-message xmlns='urn:xmpp:tm:1' usage='urn:xmpp:atm:1' encryption='https://github.com/mpenc/mpenc/ns/identity/1'>` + owners + `</trust-message>`
	}
	if _, _, _, st, err := trust.ReadTrustMessage(env(tm(`<key-owner jid='a@b'><trust>` + b64 + `</trust></key-owner>`))); err != nil || len(st) != 1 || st[0].Key != key {
		t.Fatalf("a good envelope: %v %v", st, err)
	}
	many := func(n int, el string) string { return strings.Repeat(el, n) }
	for name, p := range map[string][]byte{
		"key owner in another namespace": env(tm(`<key-owner xmlns='urn:evil' jid='a@b'><trust>` + b64 + `</trust></key-owner>`)),
		"other usage":                    env(strings.Replace(tm(``), "urn:xmpp:atm:1", "urn:xmpp:atm:0", 1)),
		"other encryption":               env(strings.Replace(tm(``), "https://github.com/mpenc/mpenc/ns/identity/1", "urn:xmpp:omemo:2", 1)),
		"hex key id (XEP-0450 0.1.0)":    env(tm(`<key-owner jid='a@b'><trust>6850019d7ed0feb6d3823072498ceb4f616c6025586f8f666dc6b9c81ef7e0a4</trust></key-owner>`)),
		"short key id":                   env(tm(`<key-owner jid='a@b'><trust>AAAA</trust></key-owner>`)),
		"owner with a resource":          env(tm(`<key-owner jid='a@b/r'><trust>` + b64 + `</trust></key-owner>`)),
		"too many owners":                env(tm(many(trust.MaxOwners+1, `<key-owner jid='a@b'/>`))),
		"too many keys":                  env(tm(`<key-owner jid='a@b'>` + many(trust.MaxStatements+1, `<trust>`+b64+`</trust>`) + `</key-owner>`)),
		"two trust messages":             env(tm(``) + tm(``)),
		"unknown element":                env(tm(`<key-owner jid='a@b'><maybe>` + b64 + `</maybe></key-owner>`)),
		"no time":                        []byte(`<content xmlns='urn:xmpp:sce:1'><from jid='a@b/c'/><to jid='a@b'/><payload>` + tm(``) + `</payload></content>`),
		"doctype":                        append([]byte(`<!DOCTYPE x [<!ENTITY e "x">]>`), env(tm(``))...),
		"too big":                        env(tm(`<key-owner jid='a@b'>` + many(2000, ` `) + many(200, `<trust>`+b64+`</trust>`) + `</key-owner>` + many(30000, " "))),
		"small-order key":                env(tm(`<key-owner jid='a@b'><trust>AQAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=</trust></key-owner>`)),
	} {
		if _, _, _, _, err := trust.ReadTrustMessage(p); !errors.Is(err, trust.ErrInvalid) {
			t.Errorf("%s: %v", name, err)
		}
	}
}

// A device that joins after another was distrusted learns that too (ours:
// docs/PROTOCOL.md "Trust messages"): A1 removed A3 and distrusted B2;
// when A1 authenticates the new A2, its message to A2 distrusts both, so
// that A2 neither pairs with A3 nor vouches for it to others later.
func TestATMNewOwnDeviceLearnsDistrust(t *testing.T) {
	w := newATMWorld(t, "A1", "A2", "A3", "B1", "B2")
	w.meet()
	w.decide("A1", "verify", "B1")
	w.decide("A1", "verify", "A3")
	w.decide("A1", "distrust", "A3")
	w.decide("A1", "distrust", "B2")
	w.sent = nil
	w.decide("A2", "verify", "A1")
	w.decide("A1", "verify", "A2")
	found := false
	for _, m := range w.sent {
		if strings.HasPrefix(m, "A1→A2 ") {
			found = strings.Contains(m, "alice@example.org: distrust A3") && strings.Contains(m, "bob@example.com: distrust B2") &&
				strings.Contains(m, "bob@example.com: trust B1")
		}
	}
	if !found {
		t.Fatalf("A1's message to the new A2: %q", w.sent)
	}
	a2 := w.dev("A2")
	if w.state(a2, w.dev("A3")) != trust.Distrusted || w.state(a2, w.dev("B2")) != trust.Distrusted || w.state(a2, w.dev("B1")) != trust.Authenticated {
		t.Fatalf("at A2:\n%s", w.matrix())
	}
}
