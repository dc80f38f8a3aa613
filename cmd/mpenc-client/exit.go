package main

import (
	"errors"
	"fmt"

	"github.com/mpenc/mpenc/app"
	"github.com/mpenc/mpenc/channel/xmpp"
)

// Exit statuses (docs/USAGE.md "Exit status"). Scripts driving -plain
// branch on them; the full-screen client uses the same.
const (
	exitOK          = 0 // what was typed reached everyone (or nothing was typed)
	exitError       = 1 // anything else: the store, the passphrase, the terminal
	exitUsage       = 2 // bad flags or configuration
	exitConnect     = 3 // the server could not be reached, or TLS failed
	exitAuth        = 4 // the server refused the login (the password)
	exitRoom        = 5 // no room could be joined (refused, removed, not included)
	exitUndelivered = 6 // a message typed was not acknowledged by everyone
)

// statusError carries an exit status other than 1 out of run.
type statusError struct {
	code int
	err  error
}

func (e *statusError) Error() string { return e.err.Error() }
func (e *statusError) Unwrap() error { return e.err }

// exitCode is the process's exit status for run's error.
func exitCode(err error) int {
	var ee *statusError
	switch {
	case err == nil:
		return exitOK
	case errors.As(err, &ee):
		return ee.code
	}
	return exitError
}

// joinFailure classifies why a room could not be joined.
func joinFailure(err error) int {
	switch {
	case errors.Is(err, xmpp.ErrAuth):
		return exitAuth
	case errors.Is(err, app.ErrConnect):
		return exitConnect
	}
	return exitRoom
}

// failed records why a room could not be joined (or was left for good);
// a later join clears it.
func (c *client) failed(room string, code int) {
	if c.failures == nil {
		c.failures = map[string]int{}
	}
	c.failures[room] = code
}

// stuck reports whether no room is joined or joining: each one failed.
// Its status: a refused login first, then an unreachable server, then
// the rooms' own refusals.
func (c *client) stuck() (int, bool) {
	if len(c.views) == 0 || len(c.failures) < len(c.views) {
		return 0, false
	}
	code := exitRoom
	for room := range c.views {
		f, ok := c.failures[room]
		if !ok {
			return 0, false
		}
		if f == exitAuth || (f == exitConnect && code != exitAuth) {
			code = f
		}
	}
	return code, true
}

// undelivered counts the messages typed in this run that did not reach
// everyone: not acknowledged in time, not delivered to some members, or
// queued and never sent. Messages refused when typed (said at once) are
// not counted.
func (c *client) undelivered() int {
	n := 0
	for _, v := range c.views {
		for _, l := range v.msgs {
			if l.own && l.at.After(c.started) && (l.ack == ackMissing || l.ack == ackPending || len(l.notDelivered) > 0) {
				n++
			}
		}
		for _, l := range v.queued {
			// A queued line leaves the view once its message is sent;
			// one sent again by hand (resent) is counted by its new line.
			if l.at.After(c.started) && !l.resent {
				n++
			}
		}
	}
	return n
}

// finalStatus is the status at a normal end of the line mode: a room
// that could not be joined wins, then messages that did not arrive.
func (c *client) finalStatus() error {
	if code, ok := c.stuck(); ok {
		return &statusError{code, errors.New("in no room: none could be joined, or each one removed us")}
	}
	if n := c.undelivered(); n > 0 {
		return &statusError{exitUndelivered, fmt.Errorf("%d message(s) typed did not reach everyone", n)}
	}
	return nil
}
