package xmpp

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/xml"
	"errors"
	"fmt"
	"io"

	"mellium.im/xmlstream"
	"mellium.im/xmpp/jid"
	"mellium.im/xmpp/stanza"
)

// History service requests (issue [N], docs/XMPP.md "History service
// requests"): an IQ set to the service's full JID carrying
// <request xmlns='…/ns/history/1'>base64</request>; its result carries
// <answer xmlns='…/ns/history/1'>base64</answer>. This layer moves the
// bytes; what they mean is package archive's.
const (
	nsHistory = "https://github.com/mpenc/mpenc/ns/history/1"
	// maxHistoryRequest and maxHistoryAnswer bound the payloads (a page of
	// 48 KiB and its fields; an answer of two pages): base64 of the
	// larger stays well under the 256 KiB servers allow a stanza.
	maxHistoryRequest = 49<<10 + 1024
	maxHistoryAnswer  = 97<<10 + 1024
	// maxIQID bounds the id of an IQ we answer (the answer must carry it
	// whole).
	maxIQID = 256
)

var (
	maxHistoryRequestText = base64.StdEncoding.EncodedLen(maxHistoryRequest)
	maxHistoryAnswerText  = base64.StdEncoding.EncodedLen(maxHistoryAnswer)
)

// historyPayload is an element of nsHistory with payload as base64 text.
func historyPayload(local string, payload []byte) xml.TokenReader {
	return xmlstream.Wrap(xmlstream.Token(xml.CharData(base64.StdEncoding.EncodeToString(payload))),
		xml.StartElement{Name: xml.Name{Space: nsHistory, Local: local}})
}

// answerHistory runs the OnHistoryRequest callback for a request and
// writes its answer as the IQ's result (on the receive loop, where
// mellium expects an IQ's answer; it would otherwise send an error).
func (a *Account) answerHistory(w xmlstream.TokenWriter, st *inStanza) error {
	answer := a.cfg.OnHistoryRequest(st.From.String(), st.HistoryRequest)
	if len(answer) == 0 || len(answer) > maxHistoryAnswer {
		a.cfg.logf("xmpp: history service: an answer of %d bytes not sent (1 to %d)", len(answer), maxHistoryAnswer)
		return nil // mellium answers service-unavailable
	}
	_, err := xmlstream.Copy(w, stanza.IQ{ID: st.ID, Type: stanza.ResultIQ, To: st.From}.Wrap(historyPayload("answer", answer)))
	return err
}

// HistoryRequest sends a request (at most 50 KiB) to a history service,
// its full JID, and returns the service's answer (at most 98 KiB). An
// error means no answer came: the service's own refusals are answers.
func (a *Account) HistoryRequest(ctx context.Context, to string, request []byte) ([]byte, error) {
	j, err := jid.Parse(to)
	if err != nil || j.Resourcepart() == "" {
		return nil, fmt.Errorf("%w: %q is not a history service's full JID", errConfig, to)
	}
	if len(request) == 0 || len(request) > maxHistoryRequest {
		return nil, fmt.Errorf("%w: a history request of %d bytes (1 to %d)", errConfig, len(request), maxHistoryRequest)
	}
	b, err := a.requestLimited(ctx, j, stanza.SetIQ, historyPayload("request", request), maxHistoryAnswerText+1024)
	if err != nil {
		return nil, fmt.Errorf("xmpp: history request to %s: %w", j, err)
	}
	return parseHistoryAnswer(b)
}

// Errors of HistoryRequest.
var (
	errHistoryAnswer = errors.New("xmpp: not a history service's answer")
	// errNoHistoryService: the address answered with an error (no
	// history service runs there, or it is offline).
	errNoHistoryService = errors.New("xmpp: no history service answers there")
)

// parseHistoryAnswer reads an IQ result (as requestBytes re-encodes it)
// for its one <answer/>.
func parseHistoryAnswer(b []byte) ([]byte, error) {
	d := xml.NewDecoder(bytes.NewReader(b))
	var text []byte
	depth, found := 0, false
	inAnswer := false
	for {
		tok, err := d.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("%w: %v", errHistoryAnswer, err)
		}
		switch t := tok.(type) {
		case xml.StartElement:
			depth++
			if depth == 1 {
				for _, at := range t.Attr {
					if at.Name.Space == "" && at.Name.Local == "type" && at.Value == string(stanza.ErrorIQ) {
						return nil, errNoHistoryService
					}
				}
			}
			if depth == 2 && t.Name.Local == "answer" && t.Name.Space == nsHistory {
				if found {
					return nil, fmt.Errorf("%w: two answers", errHistoryAnswer)
				}
				found, inAnswer = true, true
			}
		case xml.EndElement:
			depth--
			inAnswer = inAnswer && depth >= 2
		case xml.CharData:
			if inAnswer && depth == 2 {
				text = append(text, t...)
				if len(text) > maxHistoryAnswerText {
					return nil, fmt.Errorf("%w: too long", errHistoryAnswer)
				}
			}
		}
	}
	if !found {
		return nil, fmt.Errorf("%w: no answer element", errHistoryAnswer)
	}
	out, err := base64.StdEncoding.Strict().DecodeString(string(text))
	if err != nil || len(out) == 0 {
		return nil, fmt.Errorf("%w: its payload is not base64", errHistoryAnswer)
	}
	return out, nil
}
