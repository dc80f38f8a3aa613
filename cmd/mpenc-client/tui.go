package main

import (
	"context"
	"fmt"
	"strings"
	"sync/atomic"
	"time"

	"github.com/gdamore/tcell/v2"
	"github.com/rivo/tview"

	"github.com/mpenc/mpenc/app"
	"github.com/mpenc/mpenc/session"
	"github.com/mpenc/mpenc/trust"
)

// maxRendered bounds the lines drawn for a room (older ones stay in the
// history and the view model).
const maxRendered = 2000

// tui is the full-screen front end (rivo/tview): rooms in the header,
// messages on the left, members on the right, the selected message's
// details below, and the input line.
type tui struct {
	c       *client
	app     *tview.Application
	header  *tview.TextView
	msgs    *tview.TextView
	members *tview.TextView
	details *tview.TextView
	input   *tview.InputField
	body    *tview.Flex
	root    *tview.Flex
	console *roomView // notes when there is no room

	selected int  // selected message number; 0: none
	follow   bool // keep the newest line in view
	quitting bool
	counting atomic.Bool // the header shows a countdown: redraw it every second
}

func newTUI(c *client) *tui {
	t := &tui{c: c, app: tview.NewApplication(), follow: true, console: newRoomView("")}
	t.header = tview.NewTextView().SetDynamicColors(true).SetWrap(false)
	t.msgs = tview.NewTextView().SetDynamicColors(true).SetRegions(true).SetWrap(true).SetWordWrap(true).
		SetScrollable(true)
	t.msgs.SetBorder(true)
	t.members = tview.NewTextView().SetDynamicColors(true).SetWrap(false)
	t.members.SetBorder(true).SetTitle(" members ")
	t.details = tview.NewTextView().SetDynamicColors(true).SetWrap(true)
	t.details.SetBorder(true).SetTitle(" selected message (Up/Down, Ctrl-R resend, Esc) ")
	t.input = tview.NewInputField().SetLabel("> ").SetFieldBackgroundColor(tcell.ColorDefault)
	t.body = tview.NewFlex().AddItem(t.msgs, 0, 3, false).AddItem(t.members, 34, 0, false)
	t.root = tview.NewFlex().SetDirection(tview.FlexRow).
		AddItem(t.header, 1, 0, false).
		AddItem(t.body, 0, 1, false).
		AddItem(t.details, 0, 0, false).
		AddItem(t.input, 1, 0, true)
	t.input.SetDoneFunc(func(key tcell.Key) {
		if key != tcell.KeyEnter {
			return
		}
		s := t.input.GetText()
		t.input.SetText("")
		t.unselect()
		t.follow = true
		t.c.input(s)
		t.render()
	})
	t.input.SetInputCapture(t.inputKey)
	t.app.SetInputCapture(t.globalKey)
	t.app.SetRoot(t.root, true).SetFocus(t.input)
	c.ui = t
	c.post = func(f func()) { t.app.QueueUpdateDraw(f) }
	return t
}

func (t *tui) run(ctx context.Context) error {
	go func() {
		for {
			select {
			case <-ctx.Done():
				t.app.QueueUpdate(func() { t.quit() })
				return
			case ev, ok := <-t.c.app.Events():
				if !ok {
					return
				}
				t.app.QueueUpdateDraw(func() { t.c.handle(ev) })
			}
		}
	}()
	// The countdown of a wait to be included, in the header.
	go func() {
		tick := time.NewTicker(time.Second)
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
				if t.counting.Load() {
					t.app.QueueUpdateDraw(t.renderHeader)
				}
			}
		}
	}()
	// Before Run nothing else touches the widgets (QueueUpdate would wait
	// for the event loop, which is not running yet).
	t.c.start()
	t.render()
	if len(t.c.order) == 0 {
		t.note("no room yet: /join room@conference.example.org (/help lists the commands)", false)
	}
	return t.app.Run()
}

// globalKey handles the keys that work everywhere.
func (t *tui) globalKey(ev *tcell.EventKey) *tcell.EventKey {
	switch ev.Key() {
	case tcell.KeyCtrlC:
		t.quit()
		return nil
	case tcell.KeyCtrlN:
		t.c.cycle(1)
		return nil
	case tcell.KeyCtrlP:
		t.c.cycle(-1)
		return nil
	case tcell.KeyPgUp:
		row, _ := t.msgs.GetScrollOffset()
		_, _, _, h := t.msgs.GetInnerRect()
		t.follow = false
		t.msgs.ScrollTo(max(row-h+1, 0), 0)
		return nil
	case tcell.KeyPgDn:
		row, _ := t.msgs.GetScrollOffset()
		_, _, _, h := t.msgs.GetInnerRect()
		t.msgs.ScrollTo(row+h-1, 0)
		return nil
	case tcell.KeyEnd:
		if t.input.GetText() == "" {
			t.follow = true
			t.msgs.ScrollToEnd()
			return nil
		}
	case tcell.KeyRune:
		if ev.Modifiers()&tcell.ModAlt != 0 && ev.Rune() >= '1' && ev.Rune() <= '9' {
			if err := t.c.switchTo(string(ev.Rune())); err != nil {
				t.note(err.Error(), true)
			}
			return nil
		}
	}
	return ev
}

// inputKey: Up/Down with an empty input select messages; Ctrl-R sends
// the selected one again (/resend); Esc leaves the selection.
func (t *tui) inputKey(ev *tcell.EventKey) *tcell.EventKey {
	v := t.c.current()
	switch ev.Key() {
	case tcell.KeyUp:
		if v == nil || len(v.msgs) == 0 || t.input.GetText() != "" {
			return ev
		}
		if t.selected == 0 {
			t.selected = len(v.msgs)
		} else if t.selected > 1 {
			t.selected--
		}
		t.render()
		return nil
	case tcell.KeyDown:
		if t.selected == 0 || v == nil {
			return ev
		}
		if t.selected < len(v.msgs) {
			t.selected++
		} else {
			t.unselect()
		}
		t.render()
		return nil
	case tcell.KeyCtrlR:
		// Send the selected message again (when it did not reach everyone).
		if t.selected != 0 {
			t.c.input(fmt.Sprintf("/resend %d", t.selected))
			t.render()
			return nil
		}
	case tcell.KeyEscape:
		if t.selected != 0 {
			t.unselect()
			t.follow = true
			t.render()
			return nil
		}
	}
	return ev
}

func (t *tui) unselect() {
	t.selected = 0
	t.root.ResizeItem(t.details, 0, 0)
}

// The ui interface.

func (t *tui) lineAdded(v *roomView, l *line) {
	if v.jid == t.c.cur {
		v.unread = 0
		t.render()
	} else {
		t.renderHeader()
	}
}

func (t *tui) lineChanged(v *roomView, l *line) {
	if v.jid == t.c.cur {
		t.render()
	}
}

func (t *tui) note(text string, warning bool) {
	v := t.c.current()
	if v == nil {
		v = t.console
	}
	kind := lineInfo
	if warning {
		kind = lineWarning
	}
	v.add(&line{kind: kind, at: time.Now(), text: text, own: true})
	t.follow = true
	t.render()
}

func (t *tui) roomsChanged() {
	t.unselect()
	t.follow = true
	t.render()
}

func (t *tui) stateChanged(v *roomView) {
	if v.jid == t.c.cur {
		t.renderHeader()
	}
}

func (t *tui) membersChanged(v *roomView) {
	if v.jid == t.c.cur {
		t.renderHeader() // ALONE depends on the members
		t.renderMembers()
	}
}

func (t *tui) quit() {
	if t.quitting {
		return
	}
	t.quitting = true
	t.app.Stop()
}

// Drawing.

func (t *tui) render() {
	t.renderHeader()
	t.renderMessages()
	t.renderMembers()
	t.renderDetails()
}

func (t *tui) renderHeader() {
	t.counting.Store(false)
	var b strings.Builder
	b.WriteString("[::b]mpenc[::-] ")
	for i, room := range t.c.order {
		v := t.c.views[room]
		name := tview.Escape(room)
		if at := strings.IndexByte(room, '@'); at > 0 {
			name = tview.Escape(room[:at])
		}
		switch {
		case room == t.c.cur:
			fmt.Fprintf(&b, " [black:white] %d:%s [-:-]", i+1, name)
		case v.unread > 0:
			fmt.Fprintf(&b, " [yellow]%d:%s(%d)[-]", i+1, name, v.unread)
		default:
			fmt.Fprintf(&b, " %d:%s", i+1, name)
		}
	}
	if v := t.c.current(); v != nil {
		st := "connecting"
		if v.state != 0 {
			st = v.state.String()
		}
		color := "yellow"
		switch {
		case v.state == session.StateJoined:
			color = "green"
		case v.alone(t.c.members[v.jid]):
			st = "ALONE" // the session's only member: nobody to write to yet
		}
		counting := v.state == session.StateJoining && !v.joinUntil.IsZero()
		t.counting.Store(counting)
		if counting {
			st += " " + countdown(v.joinUntil, time.Now()) + " left"
		}
		fmt.Fprintf(&b, "  [%s]%s[-]", color, st)
	}
	fmt.Fprintf(&b, "  [gray]you: %s, %s[-]", tview.Escape(t.c.app.Account()), tview.Escape(shortFingerprint(trust.FingerprintOf(t.c.app.PublicKey()))))
	t.header.SetText(b.String())
}

func (t *tui) renderMessages() {
	v := t.c.current()
	if v == nil {
		v = t.console
	}
	title := " " + tview.Escape(v.jid) + " "
	if v.jid == "" {
		title = " mpenc "
	}
	t.msgs.SetTitle(title)
	var anc map[int]bool
	if sel := v.message(t.selected); sel != nil {
		anc = v.ancestors(sel)
	} else {
		t.selected = 0
	}
	lines := v.lines
	if len(lines) > maxRendered {
		lines = lines[len(lines)-maxRendered:]
	}
	var b strings.Builder
	for i, l := range lines {
		if i > 0 {
			b.WriteByte('\n')
		}
		dim := t.selected != 0 && l.kind == lineMessage && l.num != t.selected && !anc[l.num]
		b.WriteString(t.styled(v, l, dim, l.kind == lineMessage && l.num == t.selected))
	}
	t.msgs.SetText(b.String())
	switch {
	case t.selected != 0:
		t.msgs.Highlight(fmt.Sprintf("m%d", t.selected))
		t.msgs.ScrollToHighlight()
	case t.follow:
		t.msgs.Highlight()
		t.msgs.ScrollToEnd()
	}
}

// styled renders a line with tview color tags; every piece of text from
// the network is already sanitised and is escaped here.
func (t *tui) styled(v *roomView, l *line, dim, selected bool) string {
	e := tview.Escape
	ts := l.at.Local().Format("15:04")
	switch l.kind {
	case lineMessage:
		pre, suf := v.marks(l)
		body := e(indent(l.text))
		if dim {
			return fmt.Sprintf(`["m%d"][gray]%s #%d %s%s: %s%s[-][""]`, l.num, ts, l.num, e(pre), e(v.author(l)), body, e(suf))
		}
		author := "[aqua::b]" + e(v.author(l)) + "[-::-]"
		if l.own {
			author = "[green::b]" + e(v.author(l)) + "[-::-]"
		}
		if pre != "" {
			pre = "[yellow::b]" + e(pre) + "[-::-]"
		}
		if suf != "" {
			color := "gray"
			if l.ack == ackMissing && !l.absent || len(l.notDelivered) > 0 {
				color = "red"
			} else if v.oldMembers(l) {
				color = "fuchsia"
			}
			suf = "[" + color + "]" + e(suf) + "[-]"
		}
		sel := ""
		if selected {
			sel = "[::r]"
			body = body + "[::-]"
		}
		return fmt.Sprintf(`["m%d"][gray]%s #%d[-] %s%s%s: %s%s[""]`, l.num, ts, l.num, sel, pre, author, body, suf)
	case lineQueued:
		_, suf := v.marks(l)
		color := "yellow"
		if l.notSent() && !l.resent {
			color = "red"
		}
		return fmt.Sprintf("[gray]%s %s[-] [green::b]%s[-::-]: %s[%s]%s[-]", ts, l.label(), e(v.author(l)), e(indent(l.text)), color, e(suf))
	case linePlain:
		return fmt.Sprintf("[gray]%s[-] [red::b]%s[-::-] %s: %s", ts, e("[UNENCRYPTED]"), e(v.author(l)), e(indent(l.text)))
	case lineMembership:
		return fmt.Sprintf("[gray]%s[-] [blue::b]── %s[-::-]", ts, e(v.lineText(l)))
	case lineWarning:
		return fmt.Sprintf("[gray]%s[-] [red::b]!! %s[-::-]", ts, e(l.text))
	default:
		if l.own && strings.Contains(l.text, "█") { // a QR code: light modules must be light
			return "[white:black]" + e(l.text) + "[-:-]"
		}
		return fmt.Sprintf("[gray]%s ── %s[-]", ts, e(l.text))
	}
}

func (t *tui) renderMembers() {
	v := t.c.current()
	if v == nil {
		t.members.SetText("")
		return
	}
	var b strings.Builder
	for _, m := range t.c.members[v.jid] {
		b.WriteString(memberCell(m, v.deviceTag(m.ID)))
		b.WriteByte('\n')
	}
	t.members.SetText(b.String())
}

// memberCell is one member in the member list: a status dot and the bare
// JID, then the device (tag: when its user has several, deviceTag) first
// on the second line, where the narrow pane does not cut it, the status
// and the trust state.
func memberCell(m app.Member, tag string) string {
	dot, color := "●", "green"
	switch m.Status {
	case "expired", "gone", "member, gone":
		dot, color = "○", "gray"
	case "leaving":
		dot, color = "◌", "gray"
	case "waiting":
		dot, color = "◐", "yellow"
	case "no mpENC":
		dot, color = "✗", "red"
	}
	name := tview.Escape(oneLine(trust.Bare(m.ID)))
	if tag != "" {
		tag = tview.Escape("("+oneLine(tag)+")") + " "
	}
	tr := ""
	switch {
	case m.Self:
		tr = "[gray]you[-]"
	case !m.HasKey:
	case m.Trust.Changed:
		tr = "[red]CHANGED key[-]"
	case m.Trust.Claimed && claimedHere(m) != "":
		tr = "[red]its key is here twice[-]"
	case m.Trust.Claimed:
		tr = "[red]another account's key[-]"
	case !m.Trust.Trusted:
		tr = "[red]untrusted[-]"
	case m.Trust.State == trust.Authenticated:
		tr = "[green]" + stateName(m.Trust.State) + "[-]"
	default:
		tr = "[gray]" + stateName(m.Trust.State) + "[-]"
	}
	st := m.Status
	if m.Expired && !m.LastSeen.IsZero() {
		st += ", silent " + time.Since(m.LastSeen).Round(time.Second).String()
	}
	return fmt.Sprintf("[%s]%s[-] %s\n   %s[gray]%s[-] %s", color, dot, name, tag, st, tr)
}

func (t *tui) renderDetails() {
	v := t.c.current()
	if v == nil || t.selected == 0 {
		t.root.ResizeItem(t.details, 0, 0)
		return
	}
	l := v.message(t.selected)
	if l == nil {
		t.root.ResizeItem(t.details, 0, 0)
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	d := t.c.detailsOf(ctx, v, l)
	t.details.SetText(tview.Escape(d))
	t.root.ResizeItem(t.details, strings.Count(d, "\n")+3, 0)
}
