package xmpp

import (
	"bytes"
	"encoding/xml"
	"errors"
	"fmt"

	"mellium.im/xmpp/jid"
	"mellium.im/xmpp/stanza"
)

// Catching up on device channel messages from our own archive (XEP-0313)
// after each connection: packets sent to this device while it was
// offline (docs/XMPP.md "Device channel messages").
const (
	// archivePage is the page size of one archive query.
	archivePage = 100
	// archivePages bounds the pages read after one connection (100,000
	// messages); the rest waits for the next.
	archivePages = 1000
	// maxHeld bounds the live device channel packets held while the
	// archive is read (delivered after it, so that each sender's packets
	// keep their order); more are dropped.
	maxHeld      = 1024
	maxHeldBytes = 16 << 20
)

type heldDirect struct {
	from    string
	payload []byte
}

// archiveQuery is an archive query of ours in flight: the results with
// its id are ours to take.
type archiveQuery struct {
	id      string
	deliver bool   // false: only finding where the archive ends
	last    string // the id of the last result seen
}

// mamQueryIQ asks for archivePage messages after cursor (the archive's
// end when before is set: the last page).
func mamQueryIQ(queryID, after string, max int, last bool) []byte {
	var b bytes.Buffer
	b.WriteString(`<query xmlns='urn:xmpp:mam:2' queryid='`)
	xml.EscapeText(&b, []byte(queryID))
	b.WriteString(`'><x xmlns='jabber:x:data' type='submit'><field var='FORM_TYPE' type='hidden'><value>urn:xmpp:mam:2</value></field></x>`)
	fmt.Fprintf(&b, `<set xmlns='http://jabber.org/protocol/rsm'><max>%d</max>`, max)
	switch {
	case last:
		b.WriteString(`<before/>`)
	case after != "":
		b.WriteString(`<after>`)
		xml.EscapeText(&b, []byte(after))
		b.WriteString(`</after>`)
	}
	b.WriteString(`</set></query>`)
	return b.Bytes()
}

// xmlFin is the answer that ends an archive query.
type xmlFin struct {
	Type string `xml:"type,attr"`
	Fin  *struct {
		Complete string `xml:"complete,attr"`
		Set      struct {
			Last string `xml:"last"`
		} `xml:"http://jabber.org/protocol/rsm set"`
	} `xml:"urn:xmpp:mam:2 fin"`
	Error *struct {
		Conds []struct {
			XMLName xml.Name
		} `xml:",any"`
	} `xml:"error"`
}

// parseFin reads the answer to an archive query: whether it is the last
// page, and the id of its last message.
func parseFin(data []byte) (complete bool, last string, err error) {
	if len(data) > maxPEPResponse {
		return false, "", fmt.Errorf("%w: archive answer of %d bytes", errPEP, len(data))
	}
	var x xmlFin
	if err := xml.Unmarshal(data, &x); err != nil {
		return false, "", fmt.Errorf("%w: archive answer: %v", errPEP, err)
	}
	if x.Type == "error" {
		cond := "undefined-condition"
		if x.Error != nil {
			for _, c := range x.Error.Conds {
				if c.XMLName.Space == nsStanzas && c.XMLName.Local != "text" {
					cond = c.XMLName.Local
					break
				}
			}
		}
		if cond == "item-not-found" { // XEP-0313 §5.1.2: an unknown id in <after/>
			return false, "", errArchivePosition
		}
		return false, "", fmt.Errorf("xmpp: the archive refused the query: %s", cond)
	}
	if x.Type != "result" || x.Fin == nil {
		return false, "", fmt.Errorf("%w: an archive answer without <fin/>", errPEP)
	}
	if len(x.Fin.Set.Last) > maxArchiveID {
		return false, "", fmt.Errorf("%w: an archive id of %d bytes", errPEP, len(x.Fin.Set.Last))
	}
	return x.Fin.Complete == "true", x.Fin.Set.Last, nil
}

// archivedLocked takes an archive result from the receive loop (a.mu
// held; the caller checked it comes from our own account's archive):
// ours when it answers our query in flight; delivered when it is a
// device channel packet to this device.
// It reports whether to deliver it.
func (a *Account) archivedLocked(st *inStanza) (from string, payload []byte, ok bool) {
	m, q := st.MAM, a.archive
	if q == nil || m.QueryID != q.id {
		return "", nil, false
	}
	q.last = m.ID
	if !q.deliver || m.P2P == nil || !m.ToOK || !m.To.Equal(a.self) || m.Type != string(stanza.ChatMessage) ||
		!m.FromOK || m.From.Resourcepart() == "" || a.rooms[m.From.Bare().String()] != nil {
		return "", nil, false // (a room's private messages are not device channel packets)
	}
	return m.From.String(), m.P2P, true
}

// direct delivers a live device channel packet, or holds it while the
// archive is read.
func (a *Account) directLocked(from string, payload []byte) (deliver bool) {
	if a.catchingUp == 0 {
		return true
	}
	if len(a.held) < maxHeld && a.heldBytes+len(payload) <= maxHeldBytes {
		a.held = append(a.held, heldDirect{from, payload})
		a.heldBytes += len(payload)
	} else {
		a.cfg.logf("xmpp: device channel packets held during the archive catch-up over the bound: one dropped")
	}
	return false
}

// errArchivePosition: the archive no longer has the position we saved
// (expired, or purged).
var errArchivePosition = errors.New("xmpp: the archive no longer has our position")

// catchesUp reports whether the account reads its archive at each
// connection (the device channel's packets).
func (a *Account) catchesUp() bool {
	return a.cfg.OnDirect != nil && a.cfg.ArchiveCursor != nil && a.cfg.SaveArchiveCursor != nil
}

// catchUp reads our archive from where the last catch-up stopped
// (Config.ArchiveCursor) and delivers the device channel packets sent to
// this device, in the archive's order, then the live ones held
// meanwhile, until the archive is read to its end. The first time, it
// only finds where the archive ends; a position the archive no longer
// has starts again from its end (what was in between is lost, and said
// so).
func (a *Account) catchUp(cn *conn) {
	cfg := a.cfg
	if !a.catchesUp() {
		return
	}
	// installLocked counted this catch-up (catchingUp) before the
	// connection's receive loop started, so that no live packet is
	// handed over ahead of the archived ones it follows; released below.
	var mine *archiveQuery
	defer func() {
		// Hand over what was held, until nothing more is (new live
		// packets are held meanwhile, so each sender's order is kept).
		a.mu.Lock()
		if a.archive == mine {
			a.archive = nil
		}
		for {
			held := a.held
			if len(held) == 0 || a.catchingUp > 1 {
				a.catchingUp--
				a.mu.Unlock()
				return
			}
			a.held, a.heldBytes = nil, 0
			a.mu.Unlock()
			for _, h := range held {
				cfg.OnDirect(h.from, h.payload)
			}
			a.mu.Lock()
		}
	}()
	a.mu.Lock()
	current := a.conn == cn
	a.mu.Unlock()
	if !current {
		return
	}
	cursor, err := cfg.ArchiveCursor()
	if err != nil {
		cfg.logf("xmpp: no archive catch-up: reading its position: %v", err)
		return
	}
	for page := 0; page < archivePages; page++ {
		q := &archiveQuery{id: randomID(), deliver: cursor != ""}
		a.mu.Lock()
		if a.conn != cn {
			a.mu.Unlock()
			return // a newer connection reads the archive
		}
		a.archive, mine = q, q
		a.mu.Unlock()
		after, max := cursor, archivePage
		switch cursor {
		case archiveEmpty:
			after = ""
		case "":
			max = 1 // the end only
		}
		b, err := a.requestBytes(cn.ctx, jid.JID{}, stanza.SetIQ, tokens(mamQueryIQ(q.id, after, max, cursor == "")))
		if err != nil {
			cfg.logf("xmpp: reading the archive: %v", err)
			return
		}
		complete, last, err := parseFin(b)
		if errors.Is(err, errArchivePosition) && cursor != "" {
			cfg.logf("xmpp: the archive no longer has our position (expired?): device channel packets sent before now and not read are lost; starting again from its end")
			cursor = ""
			page--
			continue
		}
		if err != nil {
			cfg.logf("xmpp: reading the archive: %v", err)
			return
		}
		a.mu.Lock()
		if last == "" {
			last = q.last
		}
		a.mu.Unlock()
		if last != "" {
			cursor = last
			cfg.SaveArchiveCursor(cursor)
		}
		if !q.deliver {
			if last == "" {
				cfg.SaveArchiveCursor(archiveEmpty)
			}
			return // the first time: the archive's end found
		}
		if complete || last == "" {
			return
		}
	}
	cfg.logf("xmpp: the archive catch-up stopped after %d pages; it goes on at the next connection", archivePages)
}

// archiveEmpty is the cursor of an archive that was empty at the first
// catch-up: read from its start next time.
const archiveEmpty = "mpenc:archive-was-empty"
