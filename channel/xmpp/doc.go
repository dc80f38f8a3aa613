// Package xmpp is the GroupChannel of mpenc over an XMPP multi-user chat
// (XEP-0045), built on mellium.im/xmpp v0.23.0.
//
// A Channel is one device in one room. The server puts every presence and
// groupchat message of the room in a single order; the Channel turns that
// order into channel events (package channel):
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
//     https://github.com/mpenc/mpenc/ns/identity/1, docs/XMPP.md) becomes
//     EventIdentity, on entering and whenever it changes.
//
// # Entry points
//
// [Dial] connects (SRV lookup or Config.Addr; StartTLS or direct TLS with
// certificate verification; SCRAM, with channel binding where it is known
// to work or when Config.RequireChannelBinding asks for it; resource
// binding). [Channel.Enter] joins
// the room without history, treats the room subject as the end of the join,
// creates the room if needed and configures it to show real JIDs to every
// occupant, and refuses a room that hides them.
// [Channel.Send], [Channel.Kick], [Channel.Leave] and [Channel.Close] do what
// channel.GroupChannel says.
//
// # Reconnection
//
// Once entered, a Channel stays in the room: when the connection drops (or
// the room reports a passing shutdown, status 332) the consumer sees
// EventOwnLeave, and the Channel reconnects with exponential backoff
// (Config.ReconnectMin to ReconnectMax, ±25 %) with the same full JID and
// re-enters, which the consumer sees as EventOwnEnter. Being kicked,
// banned, the room destroyed or turned semi-anonymous end this: the Channel
// stays out and [Channel.Err] says why. A keep-alive ping detects silent
// network failures; in the room it is a self-ping (XEP-0410), which also
// detects a room that forgot us without a word (a restarted MUC service),
// or that no longer exists (checked with a disco#info query): EventOwnLeave
// whose error says "xmpp: the room forgot us" or "xmpp: the room no longer
// exists", then a new enter on the same connection, which creates the room
// anew if it is gone. A kick, a ban or the room's destruction carries the
// room's reason, if any, in the error.
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
// A Channel is safe for concurrent use. Its goroutines:
//
//   - per connection, the receive loop (mellium's Session.Serve), which
//     calls our handler: it decodes a stanza, applies it to the room state
//     machine (room.go, pure data) under the Channel's mutex and appends the
//     resulting events to the queue. It never does I/O or waits;
//   - per connection, the keep-alive;
//   - the manager: the only goroutine that connects and joins (requests to
//     the server, such as configuring a new room, are never made from the
//     receive loop);
//   - the pump: moves queued events to the unbuffered Events channel.
//
// The mutex is never held during network I/O. Send, Kick, Enter and Leave
// run on the caller's goroutine.
//
// # Queue policy
//
// Events wait in a queue of Config.EventQueue entries for the consumer.
// The consumer must drain Events. If the queue fills up, the Channel drops
// the event that did not fit and the connection with it: the consumer sees
// EventOwnLeave (so a gap in the order is never silent), and the Channel
// reconnects and re-enters once the queue has drained to half. Memory stays
// bounded whatever the server sends.
//
// # What it does not do
//
// It does not judge identity keys (the trust layer does), decrypt or parse
// mpENC packets, keep history, fetch MAM archives, send private messages
// (other than the room's mediated invitations, see Invite), announce
// availability, or stream-manage (XEP-0198). It receives invitations to
// other rooms (Invitations) only when they are addressed to its full JID:
// without an initial presence the server routes nothing sent to the bare
// JID to it, which keeps it from swallowing chats meant for the account's
// other clients or its offline storage. It sends plain text only as given
// to Send. It never logs passwords, keys or message bodies.
package xmpp
