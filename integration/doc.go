// Package integration holds the tests that run against a real XMPP server,
// behind the `integration` build tag, and the scripts that provide one.
//
// integration/prosody.sh installs Prosody (Debian package) when missing and
// starts a throw-away instance on loopback: free non-default ports, a
// generated configuration, data and a self-signed certificate in a
// temporary folder under /tmp, accounts created up front, no rate limits.
// integration/run.sh CMD... starts one, runs CMD with the connection
// settings exported as MPENC_XMPP_* variables, and always stops it.
//
// The tests take the server from those variables only (docs/XMPP.md), so
// the same tests run against any XMPP server:
//
//	make integration                       # a throw-away Prosody
//	MPENC_XMPP_ADDR=... go test -tags integration ./integration/...
//
// The tests are named TestIntegration*. They drive real clients
// (channel/xmpp), plus a bare client that is not mpenc for plain messages,
// rooms configured otherwise and hostile input. TestIntegrationSession*
// run real mpENC sessions (session.Session) over those channels: messages,
// membership operations, a member dying during an operation (its socket
// cut through a local TCP proxy), a server restart, plain and hostile
// clients. Waits are bounded (30 s) to fail rather than hang; nothing
// asserts timing. TestIntegrationMeasure* only runs with
// MPENC_XMPP_MEASURE=1 (make xmpp-measure runs them all).
// MPENC_TEST_NOTICES=1 logs every session notice. See
// docs/XMPP.md, "Sessions over XMPP".
package integration
