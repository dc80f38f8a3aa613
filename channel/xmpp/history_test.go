package xmpp

import (
	"bytes"
	"errors"
	"testing"
)

// TestParseHistoryAnswer: the answer's payload is taken from the one
// <answer/> of a result; an error IQ means no service answers there.
func TestParseHistoryAnswer(t *testing.T) {
	const ns = `xmlns='https://github.com/mpenc/mpenc/ns/history/1'`
	got, err := parseHistoryAnswer([]byte(`<iq xmlns='jabber:client' type='result' id='x'><answer ` + ns + `>AQI=</answer></iq>`))
	if err != nil || !bytes.Equal(got, []byte{1, 2}) {
		t.Fatalf("got %v, %v", got, err)
	}
	for name, tc := range map[string]struct {
		in   string
		want error
	}{
		"error":       {`<iq type='error' id='x'><error type='cancel'><service-unavailable xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></iq>`, errNoHistoryService},
		"two answers": {`<iq type='result'><answer ` + ns + `>AQI=</answer><answer ` + ns + `>AQI=</answer></iq>`, errHistoryAnswer},
		"nested":      {`<iq type='result'><x><answer ` + ns + `>AQI=</answer></x></iq>`, errHistoryAnswer},
		"not base64":  {`<iq type='result'><answer ` + ns + `>A!I=</answer></iq>`, errHistoryAnswer},
		"empty":       {`<iq type='result'><answer ` + ns + `/></iq>`, errHistoryAnswer},
		"other ns":    {`<iq type='result'><answer xmlns='urn:x'>AQI=</answer></iq>`, errHistoryAnswer},
	} {
		if _, err := parseHistoryAnswer([]byte(tc.in)); !errors.Is(err, tc.want) {
			t.Errorf("%s: %v, want %v", name, err, tc.want)
		}
	}
}
