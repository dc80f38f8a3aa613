package xmpp

import (
	"context"
	"crypto/tls"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
	"strings"

	"mellium.im/sasl"
	"mellium.im/xmlstream"
	mxmpp "mellium.im/xmpp"
)

// nsSASLCB is the namespace of XEP-0440 (SASL Channel-Binding Type
// Capability): the channel-binding types a server supports, in its stream
// features.
const nsSASLCB = "urn:xmpp:sasl-cb:0"

// Channel-binding types (RFC 5929, RFC 9266). mellium's SCRAM-…-PLUS uses
// tls-exporter on TLS 1.3 and tls-unique below; it knows no other type.
const (
	cbExporter = "tls-exporter"
	cbUnique   = "tls-unique"
)

// maxCBTypes bounds the channel-binding types we keep from one
// advertisement.
const maxCBTypes = 16

// cbOffer is what the server advertised of channel binding (XEP-0440) in
// the stream features of the connection being negotiated.
type cbOffer struct {
	advertised bool     // a <sasl-channel-binding/> element was present
	types      []string // its <channel-binding type='…'/> entries (bounded)
}

func (o cbOffer) has(typ string) bool { return slices.Contains(o.types, typ) }

// channelBindingTypes is an informational stream feature: it records the
// server's XEP-0440 advertisement in offer and negotiates nothing.
func channelBindingTypes(offer *cbOffer) mxmpp.StreamFeature {
	return mxmpp.StreamFeature{
		Name:       xml.Name{Space: nsSASLCB, Local: "sasl-channel-binding"},
		Prohibited: mxmpp.Authn,
		List: func(context.Context, xmlstream.TokenWriter, xml.StartElement) (bool, error) {
			return false, errors.New("xmpp: sasl-channel-binding: client only")
		},
		Parse: func(_ context.Context, d *xml.Decoder, _ *xml.StartElement) (bool, interface{}, error) {
			*offer = cbOffer{advertised: true}
			// The feature's children, up to its end (mellium does not skip
			// what a Parse leaves).
			depth := 0
			for {
				tok, err := d.Token()
				if err == io.EOF {
					return false, nil, nil
				}
				if err != nil {
					return false, nil, err
				}
				switch t := tok.(type) {
				case xml.StartElement:
					depth++
					if depth == 1 && t.Name.Space == nsSASLCB && t.Name.Local == "channel-binding" && len(offer.types) < maxCBTypes {
						for _, a := range t.Attr {
							if a.Name.Space == "" && a.Name.Local == "type" {
								offer.types = append(offer.types, clip(a.Value, maxAttr))
							}
						}
					}
				case xml.EndElement:
					depth--
					if depth < 0 {
						return false, nil, nil // the feature's own end
					}
				}
			}
		},
	}
}

// startTLS is mellium's StartTLS feature, forgetting any channel-binding
// advertisement of the plaintext stream: only the one that follows the
// handshake counts.
func startTLS(cfg *tls.Config, offer *cbOffer, sm *smNegotiation) mxmpp.StreamFeature {
	f := mxmpp.StartTLS(cfg)
	negotiate := f.Negotiate
	f.Negotiate = func(ctx context.Context, session *mxmpp.Session, data interface{}) (mxmpp.SessionState, io.ReadWriter, error) {
		*offer = cbOffer{}
		mask, rw, err := negotiate(ctx, session, data)
		if c, ok := rw.(net.Conn); ok && err == nil {
			// Stream management reads the stream over TLS (sm.go).
			sm.wire = newSMWire(c)
			rw = sm.wire
		}
		return mask, rw, err
	}
	return f
}

// saslFeature is mellium's SASL feature with the mechanisms chosen for
// this connection by loginMechanisms once its TLS state and the server's
// offer are known. A SASL failure after we offered channel binding
// becomes errChannelBinding, so that connect retries without it rather
// than report a wrong password.
func (s *settings) saslFeature(offer *cbOffer, noPlus bool) mxmpp.StreamFeature {
	f := mxmpp.SASL("", s.Password, sasl.ScramSha256Plus, sasl.ScramSha1Plus, sasl.ScramSha256, sasl.ScramSha1)
	f.Negotiate = func(ctx context.Context, session *mxmpp.Session, data interface{}) (mxmpp.SessionState, io.ReadWriter, error) {
		remote, _ := data.([]string)
		var cs *tls.ConnectionState
		if st := session.ConnectionState(); st.Version != 0 {
			cs = &st
		}
		mechs, err := loginMechanisms(cs, *offer, remote, s.RequireChannelBinding, noPlus)
		if err != nil {
			return 0, nil, err
		}
		picked := ""
		for _, m := range mechs {
			if slices.Contains(remote, m.Name) {
				picked = m.Name // the one mellium picks
				break
			}
		}
		plus := strings.HasSuffix(picked, "-PLUS")
		mask, rw, err := mxmpp.SASL("", s.Password, mechs...).Negotiate(ctx, session, data)
		switch {
		case err != nil && plus && isSASLFailure(err):
			err = fmt.Errorf("%w: %w", errChannelBinding, err)
		case err == nil && plus:
			s.logf("xmpp: authenticated with %s (channel binding %s)", picked, bindingType(cs))
		case err == nil:
			s.logf("xmpp: authenticated with %s", picked)
		}
		return mask, rw, err
	}
	return f
}

// loginMechanisms chooses the SASL mechanisms for one login, most
// preferred first, from the connection's TLS state (nil without TLS), the
// server's XEP-0440 advertisement and SASL mechanisms, whether the
// configuration requires channel binding, and whether this login goes
// without it (noPlus: the server refused it before).
//
// Channel binding (SCRAM-…-PLUS) is offered only where it is known to
// work: on TLS 1.3 when the server advertises tls-exporter (what mellium
// sends there), on TLS 1.2 with a tls-unique value when the server does not
// advertise types or lists tls-unique. Elsewhere plain SCRAM over the
// verified TLS connection: servers that offer -PLUS but bind differently
// (ejabberd 23.01 knows only tls-unique, even on TLS 1.3) would refuse
// every login.
//
// With require, only -PLUS mechanisms are offered, and it is an error
// (errNoChannelBinding) when the connection cannot carry channel binding
// (no TLS, no tls-unique value on TLS 1.2), the server's advertisement
// excludes the type we would use, or the server offers no -PLUS mechanism.
// On TLS 1.3 without an advertisement we try tls-exporter: the server's
// refusal is then final.
func loginMechanisms(cs *tls.ConnectionState, offer cbOffer, remote []string, require, noPlus bool) ([]sasl.Mechanism, error) {
	plain := []sasl.Mechanism{sasl.ScramSha256, sasl.ScramSha1}
	plus := []sasl.Mechanism{sasl.ScramSha256Plus, sasl.ScramSha1Plus}
	typ := bindingType(cs)
	known := typ != "" && (offer.has(typ) || typ == cbUnique && !offer.advertised)
	if !require {
		if known && !noPlus {
			return append(plus, plain...), nil
		}
		return plain, nil
	}
	switch {
	case cs == nil:
		return nil, fmt.Errorf("%w: the connection has no TLS", errNoChannelBinding)
	case typ == "":
		return nil, fmt.Errorf("%w: the TLS 1.2 session has no tls-unique value", errNoChannelBinding)
	case offer.advertised && !offer.has(typ):
		return nil, fmt.Errorf("%w: the server does not support %s (it lists %q)", errNoChannelBinding, typ, offer.types)
	case !slices.ContainsFunc(remote, func(m string) bool { return m == sasl.ScramSha256Plus.Name || m == sasl.ScramSha1Plus.Name }):
		return nil, fmt.Errorf("%w: the server offers no SCRAM-SHA-256-PLUS or SCRAM-SHA-1-PLUS", errNoChannelBinding)
	}
	return plus, nil
}

// bindingType is the channel-binding type mellium's SCRAM-…-PLUS uses on a
// connection: tls-exporter on TLS 1.3, tls-unique below when the session
// has a tls-unique value, none without TLS.
func bindingType(cs *tls.ConnectionState) string {
	switch {
	case cs == nil:
		return ""
	case cs.Version >= tls.VersionTLS13:
		return cbExporter
	case len(cs.TLSUnique) > 0:
		return cbUnique
	}
	return ""
}
