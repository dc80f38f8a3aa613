package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"
)

// plainUI is the line mode: input lines from a reader, events printed as
// lines. It suits pipes and scripts: at the end of the input it waits
// (at most drainTimeout) until messages the session queued are sent and
// its own messages acknowledged, then quits; it quits at once when no
// room can be joined. Its exit status says how it went (exit.go).
type plainUI struct {
	c     *client
	cur   string // the current room last announced
	in    io.Reader
	out   *bufio.Writer
	posts chan func()
	done  bool
	// printed: the state of each changed line last printed.
	printed map[*line]string
}

const drainTimeout = 30 * time.Second

func newPlainUI(c *client, in io.Reader, out io.Writer) *plainUI {
	p := &plainUI{c: c, in: in, out: bufio.NewWriter(out), posts: make(chan func(), 64), printed: map[*line]string{}}
	c.ui = p
	c.post = func(f func()) { p.posts <- f }
	return p
}

func (p *plainUI) println(s string) {
	p.out.WriteString(s)
	p.out.WriteByte('\n')
	p.out.Flush()
}

// prefix names the room when there are several.
func (p *plainUI) prefix(v *roomView) string {
	if len(p.c.order) > 1 {
		return "[" + v.jid + "] "
	}
	return ""
}

func (p *plainUI) lineAdded(v *roomView, l *line) { p.println(p.prefix(v) + v.plainText(l)) }

// lineChanged prints what changed about a line, once per new state (a
// line sent again is told by the command's note).
func (p *plainUI) lineChanged(v *roomView, l *line) {
	state := fmt.Sprint(l.ack, l.notAcked, l.notDelivered, l.notSent())
	if p.printed[l] == state {
		return
	}
	p.printed[l] = state
	switch {
	case l.kind == lineQueued:
		if l.notSent() && !l.resent {
			p.println(p.prefix(v) + "!! " + v.plainText(l))
		}
	case l.kind != lineMessage:
	case l.ack == ackFull && len(l.notDelivered) > 0:
		if l.own {
			// Never "everyone": it did not reach them.
			p.println(fmt.Sprintf("%s-- #%d acknowledged by everyone it reached; NOT delivered to %s", p.prefix(v), l.num, v.names(l.notDelivered)))
		}
	case l.ack == ackFull:
		if l.own {
			p.println(fmt.Sprintf("%s-- #%d acknowledged by everyone", p.prefix(v), l.num))
		}
	case l.ack == ackMissing, len(l.notDelivered) > 0:
		p.println(p.prefix(v) + "!! " + v.plainText(l))
	}
}

func (p *plainUI) note(text string, warning bool) {
	if warning {
		text = "!! " + text
	}
	p.println(text)
}

// roomsChanged says which room input goes to when that changed.
func (p *plainUI) roomsChanged() {
	if p.c.cur != p.cur && len(p.c.order) > 1 {
		p.println("-- messages now go to " + p.c.cur)
	}
	p.cur = p.c.cur
}

func (p *plainUI) membersChanged(v *roomView) {}
func (p *plainUI) stateChanged(v *roomView)   {}
func (p *plainUI) quit()                      { p.done = true }

func (p *plainUI) run(ctx context.Context) error {
	lines := make(chan string)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(p.in)
		sc.Buffer(make([]byte, 64<<10), 256<<10)
		for sc.Scan() {
			lines <- sc.Text()
		}
	}()
	p.c.start()
	events := p.c.app.Events()
	var drain <-chan time.Time // set at the end of the input
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	for !p.done {
		select {
		case <-ctx.Done():
			return nil
		case ev, ok := <-events:
			if !ok {
				return nil
			}
			p.c.handle(ev)
		case f := <-p.posts:
			f()
		case s, ok := <-lines:
			if !ok {
				lines = nil
				drain = time.After(drainTimeout)
				continue
			}
			p.c.input(strings.TrimRight(s, "\r"))
		case <-tick.C:
			if code, ok := p.c.stuck(); ok {
				// Nothing typed can go anywhere: say so at once (exit.go).
				return &statusError{code, errors.New("in no room: none could be joined, or each one removed us")}
			}
			if lines == nil && p.c.idle() {
				return p.c.finalStatus()
			}
		case <-drain:
			p.println("!! gave up waiting for acknowledgements")
			return p.c.finalStatus()
		}
	}
	return p.c.finalStatus()
}
