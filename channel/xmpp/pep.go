package xmpp

import (
	"bytes"
	"context"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"slices"
	"time"

	"mellium.im/xmlstream"
	"mellium.im/xmpp/jid"
	"mellium.im/xmpp/stanza"

	"github.com/mpenc/mpenc/crypto"
)

// pepAnswer is what we keep of a PEP service's answer.
type pepAnswer struct {
	items []pepItem // the items of a fetch, in order
	// err is the stanza error of an error answer, with the pubsub
	// condition (XEP-0060 §7.1.3, pubsub#errors) in pubsubCond.
	err        *stanza.Error
	pubsubCond string
}

type pepItem struct {
	id      string
	payload []byte // the item's child element, as XML
}

// xmlIQAnswer is the form of an IQ answer we read.
type xmlIQAnswer struct {
	Type   string `xml:"type,attr"`
	PubSub *struct {
		Items *struct {
			Item []struct {
				ID    string `xml:"id,attr"`
				Inner []byte `xml:",innerxml"`
			} `xml:"item"`
		} `xml:"items"`
	} `xml:"http://jabber.org/protocol/pubsub pubsub"`
	Error *struct {
		Type  string `xml:"type,attr"`
		Conds []struct {
			XMLName xml.Name
		} `xml:",any"`
	} `xml:"error"`
}

// parsePEPAnswer reads an IQ answer (the whole <iq/>, re-encoded, at most
// maxPEPResponse bytes).
func parsePEPAnswer(data []byte) (*pepAnswer, error) {
	if len(data) > maxPEPResponse {
		return nil, fmt.Errorf("%w: answer of more than %d bytes", errPEP, maxPEPResponse)
	}
	var x xmlIQAnswer
	if err := xml.Unmarshal(data, &x); err != nil {
		return nil, fmt.Errorf("%w: %v", errPEP, err)
	}
	a := &pepAnswer{}
	switch x.Type {
	case "result":
		if x.PubSub != nil && x.PubSub.Items != nil {
			if len(x.PubSub.Items.Item) > maxDevices {
				return nil, fmt.Errorf("%w: %d items, more than %d", errPEP, len(x.PubSub.Items.Item), maxDevices)
			}
			for _, it := range x.PubSub.Items.Item {
				a.items = append(a.items, pepItem{id: it.ID, payload: bytes.TrimSpace(it.Inner)})
			}
		}
	case "error":
		a.err = &stanza.Error{Condition: stanza.UndefinedCondition}
		if x.Error != nil {
			a.err.Type = stanza.ErrorType(x.Error.Type)
			for _, c := range x.Error.Conds {
				switch c.XMLName.Space {
				case nsStanzas:
					if c.XMLName.Local != "text" && a.err.Condition == stanza.UndefinedCondition {
						a.err.Condition = stanza.Condition(c.XMLName.Local)
					}
				case nsPubSubErrors:
					a.pubsubCond = c.XMLName.Local
				}
			}
		}
	default:
		return nil, fmt.Errorf("%w: an answer of type %.16q", errPEP, x.Type)
	}
	return a, nil
}

// request sends the IQ payload to to (the zero JID: our own account) and
// reads the answer, at most maxPEPResponse bytes of it, bounded by ctx
// and IQTimeout. Never from the receive loop: it waits for the answer.
func (a *Account) request(ctx context.Context, to jid.JID, typ stanza.IQType, payload xml.TokenReader) (*pepAnswer, error) {
	b, err := a.requestBytes(ctx, to, typ, payload)
	if err != nil {
		return nil, err
	}
	return parsePEPAnswer(b)
}

// requestBytes is request's answer as XML, at most maxPEPResponse bytes.
func (a *Account) requestBytes(ctx context.Context, to jid.JID, typ stanza.IQType, payload xml.TokenReader) ([]byte, error) {
	return a.requestLimited(ctx, to, typ, payload, maxPEPResponse)
}

// requestLimited is requestBytes with its own bound on the answer.
func (a *Account) requestLimited(ctx context.Context, to jid.JID, typ stanza.IQType, payload xml.TokenReader, limit int) ([]byte, error) {
	a.mu.Lock()
	cn := a.conn
	a.mu.Unlock()
	if cn == nil {
		return nil, errOffline
	}
	ctx, cancel := context.WithTimeout(ctx, a.cfg.IQTimeout)
	defer cancel()
	stop := context.AfterFunc(cn.ctx, cancel) // the connection went away
	defer stop()
	r, err := cn.sess.SendIQElement(ctx, payload, stanza.IQ{Type: typ, To: to, ID: randomID()})
	if err != nil {
		return nil, err
	}
	// Re-encode the answer into a bounded buffer; the session's receive
	// loop waits until r is closed, so stop reading at the cap.
	var buf bytes.Buffer
	enc := xml.NewEncoder(&buf)
	for {
		tok, rerr := r.Token() // a reader may return the last token with io.EOF
		if tok != nil {
			if err := enc.EncodeToken(xml.CopyToken(tok)); err != nil {
				r.Close()
				return nil, fmt.Errorf("%w: %v", errPEP, err)
			}
			if err := enc.Flush(); err != nil || buf.Len() > limit {
				r.Close()
				return nil, fmt.Errorf("%w: answer of more than %d bytes", errPEP, limit)
			}
		}
		if rerr == io.EOF {
			break
		}
		if rerr != nil {
			r.Close()
			return nil, fmt.Errorf("xmpp: reading an answer: %w", rerr)
		}
	}
	r.Close()
	return buf.Bytes(), nil
}

// tokens turns XML we produced (a marshalled payload) into a token
// stream for the session's encoder, namespaces as names only.
func tokens(data []byte) xml.TokenReader {
	d := xml.NewDecoder(bytes.NewReader(data))
	return xmlstream.ReaderFunc(func() (xml.Token, error) {
		tok, err := d.Token()
		if se, ok := tok.(xml.StartElement); ok {
			attrs := se.Attr[:0:0]
			for _, at := range se.Attr {
				if at.Name.Space != "xmlns" && !(at.Name.Space == "" && at.Name.Local == "xmlns") {
					attrs = append(attrs, at)
				}
			}
			se.Attr = attrs
			tok = se
		}
		return tok, err
	})
}

// formField is one field of a submitted data form.
type formField struct{ name, value string }

// nodeOptions are the node settings we publish with: open access (anyone
// may fetch a device's public keys, as XEP-0384 has it), items kept.
func nodeOptions(maxItems string) []formField {
	return []formField{
		{"pubsub#access_model", "open"},
		{"pubsub#persist_items", "true"},
		{"pubsub#max_items", maxItems},
	}
}

func submitForm(formType string, fields []formField) []byte {
	var b bytes.Buffer
	b.WriteString(`<x xmlns='jabber:x:data' type='submit'><field var='FORM_TYPE' type='hidden'><value>`)
	xml.EscapeText(&b, []byte(formType))
	b.WriteString(`</value></field>`)
	for _, f := range fields {
		b.WriteString(`<field var='`)
		xml.EscapeText(&b, []byte(f.name))
		b.WriteString(`'><value>`)
		xml.EscapeText(&b, []byte(f.value))
		b.WriteString(`</value></field>`)
	}
	b.WriteString(`</x>`)
	return b.Bytes()
}

// publishIQ is the pubsub publish of item id of node, with publish-options
// when opts is not nil.
func publishIQ(node, id string, item []byte, opts []formField) []byte {
	var b bytes.Buffer
	b.WriteString(`<pubsub xmlns='http://jabber.org/protocol/pubsub'><publish node='`)
	xml.EscapeText(&b, []byte(node))
	b.WriteString(`'><item id='`)
	xml.EscapeText(&b, []byte(id))
	b.WriteString(`'>`)
	b.Write(item)
	b.WriteString(`</item></publish>`)
	if opts != nil {
		b.WriteString(`<publish-options>`)
		b.Write(submitForm(nsPublishOpts, opts))
		b.WriteString(`</publish-options>`)
	}
	b.WriteString(`</pubsub>`)
	return b.Bytes()
}

// configureIQ sets node's configuration (XEP-0060 §8.2.4).
func configureIQ(node string, opts []formField) []byte {
	var b bytes.Buffer
	b.WriteString(`<pubsub xmlns='http://jabber.org/protocol/pubsub#owner'><configure node='`)
	xml.EscapeText(&b, []byte(node))
	b.WriteString(`'>`)
	b.Write(submitForm(nsNodeConfig, opts))
	b.WriteString(`</configure></pubsub>`)
	return b.Bytes()
}

// createIQ creates node with a configuration (XEP-0060 §8.1.3).
func createIQ(node string, opts []formField) []byte {
	var b bytes.Buffer
	b.WriteString(`<pubsub xmlns='http://jabber.org/protocol/pubsub'><create node='`)
	xml.EscapeText(&b, []byte(node))
	b.WriteString(`'/><configure>`)
	b.Write(submitForm(nsNodeConfig, opts))
	b.WriteString(`</configure></pubsub>`)
	return b.Bytes()
}

// itemsIQ fetches item id of node (all items when id is "").
func itemsIQ(node, id string) []byte {
	var b bytes.Buffer
	b.WriteString(`<pubsub xmlns='http://jabber.org/protocol/pubsub'><items node='`)
	xml.EscapeText(&b, []byte(node))
	b.WriteString(`'`)
	if id == "" {
		b.WriteString(`/></pubsub>`)
		return b.Bytes()
	}
	b.WriteString(`><item id='`)
	xml.EscapeText(&b, []byte(id))
	b.WriteString(`'/></items></pubsub>`)
	return b.Bytes()
}

// publishPath says how an item was published (logged, and checked by the
// tests of the fallback).
type publishPath uint8

const (
	publishedWithOptions publishPath = iota + 1 // publish-options accepted at once
	publishedAfterConfig                        // the node was (re)configured, then publish-options accepted
	publishedPlain                              // published without options: the node keeps the server's settings
)

// publish publishes item id of our node with nodeOptions as publish-options
// (XEP-0060 §7.1.5), falling back as servers need. When the publish is
// refused — the node exists with other settings (precondition-not-met,
// Prosody), or the server takes only some fields as preconditions
// (resource-constraint, ejabberd 23.01) or none — the node is configured
// to our settings, or created with them (a max_items of "max" that the
// server refuses is set as 256, Prosody's default cap), and the item
// published without options. When even that fails, the item is published
// without options into whatever node the server gives.
func (a *Account) publish(ctx context.Context, node, id string, item []byte, maxItems string) (publishPath, error) {
	opts := nodeOptions(maxItems)
	ans, err := a.request(ctx, jid.JID{}, stanza.SetIQ, tokens(publishIQ(node, id, item, opts)))
	if err != nil {
		return 0, err
	}
	if ans.err == nil {
		return publishedWithOptions, nil
	}
	refusal := fmt.Sprintf("%v %s", ans.err.Condition, ans.pubsubCond)
	cfgErr := a.configure(ctx, node, opts)
	if cfgErr != nil && maxItems != "256" && maxItems != "1" {
		cfgErr = a.configure(ctx, node, nodeOptions("256"))
	}
	ans, err = a.request(ctx, jid.JID{}, stanza.SetIQ, tokens(publishIQ(node, id, item, nil)))
	if err != nil {
		return 0, err
	}
	if ans.err != nil {
		return 0, fmt.Errorf("xmpp: publishing to %s: %w", node, *ans.err)
	}
	if cfgErr != nil {
		a.cfg.logf("xmpp: publishing to %s with our node settings was refused (%s) and configuring the node failed (%v): published with the server's settings", node, refusal, cfgErr)
		return publishedPlain, nil
	}
	return publishedAfterConfig, nil
}

// configure sets node's settings, creating it with them when it does not
// exist.
func (a *Account) configure(ctx context.Context, node string, opts []formField) error {
	ans, err := a.request(ctx, jid.JID{}, stanza.SetIQ, tokens(configureIQ(node, opts)))
	if err != nil {
		return err
	}
	if ans.err != nil && ans.err.Condition == stanza.ItemNotFound {
		ans, err = a.request(ctx, jid.JID{}, stanza.SetIQ, tokens(createIQ(node, opts)))
		if err != nil {
			return err
		}
		if ans.err != nil && ans.err.Condition == stanza.Conflict {
			// Another device (or its plain publish) created the node
			// meanwhile, perhaps with the server's settings: configure
			// that one.
			ans, err = a.request(ctx, jid.JID{}, stanza.SetIQ, tokens(configureIQ(node, opts)))
			if err != nil {
				return err
			}
		}
	}
	if ans.err != nil {
		return fmt.Errorf("xmpp: configuring %s: %w", node, *ans.err)
	}
	return nil
}

// fetch fetches item id (or every item) of node from account's PEP
// service. A node or item that does not exist gives no items and no
// error.
func (a *Account) fetch(ctx context.Context, account jid.JID, node, id string) ([]pepItem, error) {
	ans, err := a.request(ctx, account.Bare(), stanza.GetIQ, tokens(itemsIQ(node, id)))
	if err != nil {
		return nil, err
	}
	if ans.err != nil {
		if ans.err.Condition == stanza.ItemNotFound {
			return nil, nil
		}
		return nil, fmt.Errorf("xmpp: fetching %s from %s: %w", node, account.Bare(), *ans.err)
	}
	return ans.items, nil
}

// listed fetches account's device list, structurally valid entries only.
func (a *Account) listed(ctx context.Context, account jid.JID) ([]listedDevice, bool, error) {
	items, err := a.fetch(ctx, account, nsDevices, devicesItem)
	if err != nil {
		return nil, false, err
	}
	for _, it := range items {
		if it.id == devicesItem {
			ds, err := parseDevices(it.payload)
			return ds, true, err
		}
	}
	return nil, false, nil
}

// Devices fetches the device list that account (a bare JID) publishes,
// and returns the devices whose entry is signed by their key for that
// account, in the list's order. It returns no devices and no error when
// the account publishes no list (a client other than mpenc, or an mpenc
// from before device lists). It fails while the account is reconnecting
// ("xmpp: account offline"), and for a list that breaks the format's rules
// ("xmpp: malformed published data").
func (a *Account) Devices(ctx context.Context, account string) ([]Device, error) {
	j, err := jid.Parse(account)
	if err != nil {
		return nil, fmt.Errorf("%w: JID %q: %v", errConfig, account, err)
	}
	ds, _, err := a.listed(ctx, j.Bare())
	if err != nil {
		return nil, err
	}
	var out []Device
	for i := range ds {
		if ds[i].verify(j) {
			out = append(out, ds[i].Device)
		}
	}
	return out, nil
}

// Bundle fetches the bundle that device id of account (a bare JID)
// publishes, checked completely (its key is the device's, its signature
// binds it to the account and the device). It returns nil and no error
// when the device publishes none.
func (a *Account) Bundle(ctx context.Context, account string, id DeviceID) (*Bundle, error) {
	j, err := jid.Parse(account)
	if err != nil {
		return nil, fmt.Errorf("%w: JID %q: %v", errConfig, account, err)
	}
	items, err := a.fetch(ctx, j.Bare(), nsBundles, id.String())
	if err != nil {
		return nil, err
	}
	for _, it := range items {
		if it.id == id.String() {
			return parseBundle(it.payload, j, id, time.Now())
		}
	}
	return nil, nil
}

// Intervals of the device-list upkeep (upkeep).
const (
	// recheckMin and recheckMax bound the random delay before the first
	// re-check after a connection: two devices that connect together
	// both publish a list holding only themselves; the re-check puts back
	// whichever the other overwrote.
	recheckMin = 2 * time.Second
	recheckMax = 6 * time.Second
	// recheckEvery is the interval of later re-checks.
	recheckEvery = 15 * time.Minute
)

// self is this device's entry, signed.
func (a *Account) selfEntry() (listedDevice, bool) {
	s := a.cfg
	if s.Identity == (crypto.PublicKey{}) || s.Sign == nil {
		return listedDevice{}, false
	}
	a.mu.Lock()
	res := a.self.Resourcepart()
	a.mu.Unlock()
	d := listedDevice{Device: Device{ID: deviceIDOf(s.Identity), Resource: res, Key: s.Identity, Label: s.Label}}
	d.sig = s.Sign(deviceEntryMessage(s.account, res, s.Label))
	return d, true
}

// upkeep keeps this device in its account's device list and its bundle
// published, for connection cn's life: at once, again after a few
// seconds (the list is read, changed and written whole, so two devices
// writing together lose one entry), then every recheckEvery.
func (a *Account) upkeep(cn *conn) {
	self, ok := a.selfEntry()
	if !ok {
		return
	}
	bundled := false
	// unconfigured: our nodes published with the server's settings after
	// configuring them failed (ejabberd sometimes aborts the transaction
	// inside the server): others may not be allowed to read them, so
	// they are configured again at the next, early, re-check.
	unconfigured := map[string]string{} // node → its max_items
	delay := time.Duration(0)
	for round := 0; ; round++ {
		if delay > 0 {
			select {
			case <-cn.ctx.Done():
				return
			case <-time.After(delay):
			}
		}
		for node, maxItems := range unconfigured {
			if err := a.configure(cn.ctx, node, nodeOptions(maxItems)); err != nil {
				a.cfg.logf("xmpp: configuring %s again: %v", node, err)
				continue
			}
			a.cfg.logf("xmpp: configured %s to our settings", node)
			delete(unconfigured, node)
		}
		if round == 0 || len(unconfigured) > 0 {
			delay = recheckMin + rand.N(recheckMax-recheckMin)
		} else {
			delay = recheckEvery
		}
		path, err := a.ensureListed(cn.ctx, self)
		if err != nil {
			a.cfg.logf("xmpp: keeping this device in the published device list: %v", err)
			continue
		}
		if path == publishedPlain {
			unconfigured[nsDevices] = "1"
			delay = recheckMin + rand.N(recheckMax-recheckMin)
		}
		if !bundled {
			path, err := a.publishBundle(cn.ctx, self)
			if err != nil {
				a.cfg.logf("xmpp: publishing this device's bundle: %v", err)
				continue
			}
			if path == publishedPlain {
				unconfigured[nsBundles] = "max"
				delay = recheckMin + rand.N(recheckMax-recheckMin)
			}
			bundled = true
		}
	}
}

// ensureListed reads our account's device list and publishes it again
// with self in it when self is missing or differs.
func (a *Account) ensureListed(ctx context.Context, self listedDevice) (publishPath, error) {
	list, _, err := a.listed(ctx, a.cfg.account)
	if err != nil && !errors.Is(err, errPEP) {
		return 0, err
	}
	// A malformed list (err wraps errPEP) is replaced by one of us alone.
	merged, changed := mergeSelf(list, self)
	if !changed {
		return 0, nil
	}
	item, err := encodeDevices(merged)
	if err != nil {
		return 0, err
	}
	path, err := a.publish(ctx, nsDevices, devicesItem, item, "1")
	if err != nil {
		return 0, err
	}
	a.cfg.logf("xmpp: published the device list (devices: %d; %v)", len(merged), path)
	return path, nil
}

// publishBundle publishes our bundle, one item per device of the node.
func (a *Account) publishBundle(ctx context.Context, self listedDevice) (publishPath, error) {
	b := &Bundle{Device: self.ID, Key: self.Key, Published: time.Now().Truncate(time.Second)}
	if a.cfg.OneTimeKeys != nil {
		b.OneTimeKeys, b.LastResort = a.cfg.OneTimeKeys()
	}
	item, err := encodeBundle(a.cfg.account, b, a.cfg.Sign)
	if err != nil {
		return 0, err
	}
	path, err := a.publish(ctx, nsBundles, self.ID.String(), item, "max")
	if err != nil {
		return 0, err
	}
	a.cfg.logf("xmpp: published this device's bundle (%v)", path)
	return path, nil
}

// PublishBundle publishes this device's bundle again now, with the key
// digests Config.OneTimeKeys gives (after one was spent, or new ones
// made). It fails while the account is reconnecting, and without
// Config.Identity and Config.Sign.
func (a *Account) PublishBundle(ctx context.Context) error {
	self, ok := a.selfEntry()
	if !ok {
		return fmt.Errorf("%w: publishing a bundle needs Identity and Sign", errConfig)
	}
	path, err := a.publishBundle(ctx, self)
	if err == nil && path == publishedPlain {
		// Try to open the node now; the upkeep tries again otherwise.
		if cerr := a.configure(ctx, nsBundles, nodeOptions("max")); cerr != nil {
			a.cfg.logf("xmpp: configuring %s again: %v", nsBundles, cerr)
		}
	}
	return err
}

// RemoveDevice removes another device of this account from the
// account's published device list (the user removed it: issue [M]). A
// device still running puts itself back at its next check (it keeps its
// own entry listed); what keeps it out of the user's conversations is
// the distrust the caller records and tells the other devices. It fails
// for this device itself.
func (a *Account) RemoveDevice(ctx context.Context, id DeviceID) error {
	if a.cfg.Identity != (crypto.PublicKey{}) && deviceIDOf(a.cfg.Identity) == id {
		return fmt.Errorf("%w: removing this device from its own list", errConfig)
	}
	list, _, err := a.listed(ctx, a.cfg.account)
	if err != nil {
		return err
	}
	kept := slices.DeleteFunc(slices.Clone(list), func(d listedDevice) bool { return d.ID == id })
	if len(kept) == len(list) {
		return nil
	}
	item, err := encodeDevices(kept)
	if err != nil {
		return err
	}
	path, err := a.publish(ctx, nsDevices, devicesItem, item, "1")
	if err != nil {
		return err
	}
	a.cfg.logf("xmpp: removed device %v from the device list (devices: %d; %v)", id, len(kept), path)
	return nil
}

func (p publishPath) String() string {
	switch p {
	case publishedWithOptions:
		return "with publish-options"
	case publishedAfterConfig:
		return "after configuring the node"
	case publishedPlain:
		return "without publish-options"
	}
	return fmt.Sprintf("publishPath(%d)", uint8(p))
}
