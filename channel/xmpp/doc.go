// Package xmpp is the GroupChannel of mpenc over an XMPP multi-user chat
// (XEP-0045), built on mellium.im/xmpp v0.23.0.
//
// An Account is one device's login: one connection, shared by every room
// the device is in, under one full JID (the device's participant id in
// every room). A Channel is that device in one room. The server puts every
// presence and groupchat message of the room in a single order; the
// Channel turns that order into channel events (package channel):
//
//   - presence becomes EventOwnEnter, EventOwnLeave and EventOthers, keyed by
//     the occupants' real full JIDs (never their nicks), each stamped with
//     the membership at its position;
//   - a groupchat body starting with "?mpENC:" becomes EventPacket, any other
//     body EventPlain (a client that does not speak mpENC), in the order
//     received, our own echoes included: the echo is our message's place in
//     the order;
//   - the identity key each occupant announces in its presence (an
//     <identity/> element in the namespace
//     https://github.com/mpenc/mpenc/ns/identity/1, docs/XMPP.md), with
//     the device label it signed with that key, becomes EventIdentity, on
//     entering and whenever either changes (a label whose signature does
//     not check is dropped, the key still reported).
//
// # Entry points
//
// [Dial] connects (SRV lookup or Config.Addr; StartTLS or direct TLS with
// certificate verification; SCRAM, with channel binding where it is known
// to work or when Config.RequireChannelBinding asks for it; resource
// binding) and keeps the account connected until [Account.Close].
// [Account.Room] gives the Channel of one room, under a nick. [Channel.Enter]
// joins the room without history, treats the room subject as the end of
// the join, creates the room if needed and configures it to show real JIDs
// to every occupant, and refuses a room that hides them; a nick in use is
// tried again as "nick (2)", "nick (3)", ... up to nine times.
// [Channel.Send], [Channel.Kick], [Channel.Leave] and [Channel.Close] do what
// channel.GroupChannel says.
//
// # Reconnection
//
// Once entered, a Channel stays in the room: when the account's connection
// drops (or the room reports a passing shutdown, status 332) the consumer
// sees EventOwnLeave; the Account reconnects with exponential backoff
// (Config.ReconnectMin to ReconnectMax, ±25 %) with the same full JID, and
// every Channel that wants to be in re-enters, which its consumer sees as
// EventOwnEnter. Being kicked, banned, the room destroyed or turned
// semi-anonymous end this for that room: the Channel stays out and
// [Channel.Err] says why. An authentication or TLS failure on reconnection
// ends it for every room. A keep-alive detects silent network failures:
// each room we are in is self-pinged (XEP-0410), which also detects a room
// that forgot us without a word (a restarted MUC service) or that no
// longer exists (checked with a disco#info query): EventOwnLeave whose
// error says "xmpp: the room forgot us" or "xmpp: the room no longer
// exists", then a new enter on the same connection, which creates the room
// anew if it is gone; when no room answers, the server is pinged, and the
// connection dropped if it does not answer either. A kick, a ban or the
// room's destruction carries the room's reason, if any, in the error.
//
// # Hostile input
//
// Everything from the network is treated as hostile. Stanzas are decoded
// by a bounded decoder (decode.go: caps on body size, tokens, depth,
// status codes, JID lengths) into the few facts the channel acts on; a
// stanza that does not make sense is ignored, never a panic. Delayed (history) messages are ignored. An occupant
// without a visible real JID is not a member.
//
// # Errors
//
// The package exports no error values: no caller branches on them, and
// each error's text says what happened ("xmpp: authentication failed",
// "xmpp: TLS failed", "xmpp: the server refused channel binding", "xmpp:
// not in the room", "xmpp: removed from room@service: kicked", ...). The
// methods' documentation gives the texts.
//
// # Concurrency
//
// Accounts and Channels are safe for concurrent use. Their goroutines:
//
//   - per connection, the receive loop (mellium's Session.Serve), which
//     calls the account's handler: it decodes a stanza and hands it to the
//     room it comes from, which applies it to its state machine (room.go,
//     pure data) under the Channel's mutex and appends the resulting events
//     to the Channel's queue. It never does I/O or waits;
//   - per connection, the keep-alive;
//   - the account's manager: the only goroutine that connects;
//   - per Channel, its manager, the only goroutine that joins (requests to
//     the server, such as configuring a new room, are never made from the
//     receive loop), and its pump, which moves queued events to the
//     unbuffered Events channel.
//
// No mutex is held during network I/O. Send, Kick, Enter and Leave run on
// the caller's goroutine.
//
// # Queue policy
//
// Events wait in a queue of Config.EventQueue entries per room for the
// consumer. The consumer must drain Events. If the queue fills up, the
// Channel drops the event that did not fit and leaves the room: the
// consumer sees EventOwnLeave (so a gap in the order is never silent), and
// the Channel re-enters once the queue has drained to half. The account's
// connection, which other rooms share, is kept. Memory stays bounded
// whatever the server sends.
//
// # What it does not do
//
// It does not judge identity keys (the trust layer does), decrypt or parse
// mpENC packets, keep history, fetch MAM archives, send private messages
// (other than the room's mediated invitations, see Invite), announce
// availability, or stream-manage (XEP-0198). It receives invitations to
// other rooms (Config.OnInvitation) only when they are addressed to its
// full JID: without an initial presence the server routes nothing sent to
// the bare JID to it, which keeps it from swallowing chats meant for the
// account's other clients or its offline storage. It sends plain text only as given
// to Send. It never logs passwords, keys or message bodies.
package xmpp
