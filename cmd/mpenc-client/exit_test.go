package main

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/mpenc/mpenc/app"
	"github.com/mpenc/mpenc/channel/xmpp"
)

// TestExitStatus: how the line mode's end maps to an exit status.
func TestExitStatus(t *testing.T) {
	auth := fmt.Errorf("%w: connecting a@b: %w", app.ErrConnect, fmt.Errorf("x: %w", xmpp.ErrAuth))
	refused := fmt.Errorf("%w: connecting a@b: xmpp: dial: connection refused", app.ErrConnect)
	if joinFailure(auth) != exitAuth || joinFailure(refused) != exitConnect || joinFailure(errors.New("app: bad room")) != exitRoom {
		t.Fatal("join failures misclassified")
	}
	if exitCode(nil) != exitOK || exitCode(errors.New("store")) != exitError || exitCode(&statusError{exitRoom, errors.New("x")}) != exitRoom {
		t.Fatal("exitCode")
	}

	// Every room failed: stuck, with the login's refusal first.
	c, _ := newTestClient("r1@muc", "r2@muc")
	if _, ok := c.stuck(); ok {
		t.Fatal("stuck before anything failed")
	}
	c.handle(app.Event{Room: "r1@muc", Kind: app.EventJoined, Err: errors.New("not included in time")})
	if _, ok := c.stuck(); ok {
		t.Fatal("stuck with one room still joining")
	}
	c.failed("r2@muc", joinFailure(refused))
	if code, ok := c.stuck(); !ok || code != exitConnect {
		t.Fatalf("stuck %v, status %d; want %d", ok, code, exitConnect)
	}
	c.failed("r1@muc", joinFailure(auth))
	if code, _ := c.stuck(); code != exitAuth {
		t.Fatalf("status %d, want %d", code, exitAuth)
	}
	if exitCode(c.finalStatus()) != exitAuth {
		t.Fatal("finalStatus does not put a failed login first")
	}
	// A room joined later is not stuck any more.
	c.handle(app.Event{Room: "r2@muc", Kind: app.EventJoined})
	if _, ok := c.stuck(); ok {
		t.Fatal("stuck with a room joined")
	}

	// Undelivered: only this run's own messages that did not reach
	// everyone, and queued ones never sent.
	c, _ = newTestClient("r@muc")
	v := c.views["r@muc"]
	old := c.started.Add(-time.Hour)
	now := c.started.Add(time.Second)
	v.msgs = []*line{
		{kind: lineMessage, own: true, at: old, ack: ackMissing},  // an earlier run's
		{kind: lineMessage, own: false, at: now, ack: ackMissing}, // someone else's
		{kind: lineMessage, own: true, at: now, ack: ackFull},
	}
	if err := c.finalStatus(); err != nil {
		t.Fatalf("nothing undelivered: %v", err)
	}
	v.msgs = append(v.msgs, &line{kind: lineMessage, own: true, at: now, ack: ackFull, notDelivered: []string{"x@y/z"}})
	if exitCode(c.finalStatus()) != exitUndelivered {
		t.Fatal("a message not delivered to a member: not counted")
	}
	v.msgs = v.msgs[:3]
	v.msgs[2].ack = ackPending // given up waiting
	if exitCode(c.finalStatus()) != exitUndelivered {
		t.Fatal("an unacknowledged message: not counted")
	}
	v.msgs[2].ack = ackFull
	v.queued[[20]byte{1}] = &line{kind: lineQueued, own: true, at: now}
	if exitCode(c.finalStatus()) != exitUndelivered {
		t.Fatal("a message still queued: not counted")
	}
	v.queued[[20]byte{1}].resent = true
	if err := c.finalStatus(); err != nil {
		t.Fatalf("a queued line sent again by hand counted: %v", err)
	}
}
