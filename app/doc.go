// Package app is the wiring a client or a bot needs to run one account:
// the store, the device's identity key, one XMPP connection shared by every
// room, one mpENC session per room, the trust store as every session's key directory, the
// history, and the notices for the user interface.
//
// It is an edge package: cmd/mpenc-client and cmd/mpenc-bot are thin
// layers over it, and it uses only the module's exported API.
//
// # Entry points
//
//	a, err := app.Open(ctx, app.Config{
//		Store: "alice.db", Account: "alice@example.org", Password: pw,
//		Passphrase: func(create bool) ([]byte, error) { ... },
//		Timing: session.InternetTiming(),
//	})
//	defer a.Close(ctx)                  // parts every room properly, then closes
//	r, err := a.Join(ctx, "room@conference.example.org", app.RoomOptions{})
//	for ev := range a.Events() { ... }  // conversation entries, notices, trust decisions, join results
//	id, err := r.Send(ctx, "hello")
//
// [Open] opens (or creates) the store, the account and the device, and
// unlocks (or creates) the device's Ed25519 identity key with the
// passphrase the caller supplies (environment or prompt: the caller's
// choice). [App.Join] opens the room on the account's connection
// (channel/xmpp, dialled by the first Join), announcing our identity key
// and the device's label, runs a session.Session over it with a trust.Directory
// as its key directory (keys announced in the room reach the trust store
// through session.KeyObserver, and the room's occupants reach the
// directory in the same order through session.Config.OnOccupants, so that
// one key announced by two members of one account present at once is a
// warning), enters, and joins in the background.
//
// # One conversation, live and after a restart
//
// The App turns the session notices that are history (messages, messages
// typed while out of the session and waiting to be sent, unencrypted
// messages, membership changes, acknowledgements, messages not delivered)
// into [Entry] values, records each in the store, then delivers it as an
// EventEntry; a message whose acknowledgement or delivery state changes
// is recorded and delivered again, and a queued message, once sent, comes
// as the message that replaces its line. [App.History] reads the same entries back, so a
// client draws a room's lines with one function whether they arrive live
// or from the history after a restart. The store keeps entries and knows
// nothing of sessions.
//
// [App.Events] also delivers the other notices (progress, state, kicks,
// warnings: EventNotice), every trust decision, the outcome of joins,
// EventOut when we are out of a room and nothing brings us back by itself
// (kicked, the room destroyed, a failed join: a lost connection or a
// server restart heals by itself), and invitations to other rooms that
// reached one of our connections (once each; nothing is joined by itself). [Room] has the user's actions:
// Send, Invite, Exclude (kick), Refresh, Members (session status and
// trust), Unacked.
//
// # Devices, resources and nicks
//
// The device has one XMPP connection, shared by every room, under one
// resource: "mpenc-" and the first 8 hex digits of its key's fingerprint,
// stored with the device (docs/PROTOCOL.md, "Devices"). Its participant
// id, the full JID, is therefore the same in every room and across
// restarts. Its label ([Config.Label], default the host's name) names it
// to people, and its default nick in a room is the account's local part,
// the label and the resource's suffix ("alice/laptop-1a2b3c4d"), so that
// two devices of one account never share a nick (Prosody and ejabberd
// merge those into one occupant); a nick another account holds is
// resolved by the channel (" (2)", " (3)", ...). [Member.Label]
// is each member's label as its device signed it.
//
// # Logging
//
// Diagnostics go to [Config.Logger], a [log/slog.Logger] (nil: discarded),
// as a message and key/value pairs ("room", "err", ...; an "err" that is
// nil is left out). They never contain message text, keys or passwords.
//
// # What it does not do
//
// It draws nothing, reads no files but the store (and a CA file the
// Settings name), and prompts for nothing: passwords and passphrases come
// from the caller. [OpenLog] gives the commands a log file that rotates
// itself (10 MiB, three old files kept, mode 0600). [Room.Invite]
// includes a member who is in the room, and otherwise sends an XMPP
// invitation, remembers it and includes them when they enter.
package app
