// Package store keeps mpenc's state on disk in one SQLite database
// (modernc.org/sqlite: pure Go, no cgo): our accounts and devices, our
// identity keys sealed under a passphrase, the trust store, rooms, and
// message history. docs/STORE.md describes the schema and the arguments.
//
// # Entry points
//
//	st, err := store.Open(path, nil)           // creates and migrates
//	acct, res, key, err := st.Unlock(ctx, "alice@example.org", "alice", passphrase, store.KDFParams{})
//	// the first run creates the account and the device (res: its resource)
//	ts := st.Trust(acct.ID, trust.Config{})     // the trust store
//	dir := &trust.Directory{Store: ts, Self: ch.Self(), SelfKey: key.Public()} // ch: the room's channel
//	// session.Config{Directory: dir, Identity: key, ...}
//	e, err := st.Append(ctx, acct.ID, "room@muc.example.org", store.Entry{Kind: "message", ...})
//	page, _ := st.History(ctx, acct.ID, "room@muc.example.org", 0, 50) // the last 50 entries
//
// History entries are what package app makes of session notices: the
// store keeps what it is given and knows nothing of sessions. Rooms:
// [Store.SaveRoom], [Store.Rooms]. A bot reads its passphrase with
// [PassphraseFromEnv].
//
// # Durability
//
// The database runs in WAL mode with synchronous=FULL and every logical
// write is one transaction: once a method returns, its write survives the
// process being killed and the machine losing power; a write interrupted
// part-way leaves nothing behind. A client should show what Append
// returned, once it returned.
//
// # Concurrency
//
// A *Store is safe for concurrent use: the UI goroutine and the session
// goroutines may share one. Operations are serialised on a single SQLite
// connection. Two processes may open the same file (writes wait up to
// Options.BusyTimeout for each other), but two clients running the same
// device at once would be two members with one participant id: the store
// does not prevent that.
//
// # Secrets
//
// Identity seeds are sealed with XChaCha20-Poly1305 under a key derived
// from the passphrase by Argon2id (parameters recorded per key); a wrong
// passphrase gives [errWrongPassphrase], a damaged or swapped key
// [ErrCorrupt], never a wrong key. Passphrases are []byte so callers can
// zero them; the store zeroes its derived keys, the decrypted seed and
// its normalised copy of the passphrase. It cannot zero what Go and the
// libraries keep: Argon2id's 64 MiB work area (left to the garbage
// collector), the AEAD's internal state, crypto/ed25519's expanded key
// copy, and whatever the runtime copied. [PassphraseFromEnv] overwrites
// the variable's value in Go's copy of the environment and, on Linux, in
// the process's initial environment (/proc/PID/environ) before removing
// it.
//
// Not secret, and stored in the clear: message history (plaintext of what
// the user saw), trust decisions, JIDs and public keys. Anyone who can
// read the file can read the history; protect it with the file system
// (Open makes the file and its companions mode 0600 at every open) or
// full-disk encryption.
//
// # Bounds
//
// Unencrypted messages (plain entries), which anyone in a room can send,
// are kept as their first 4 KiB, and a room keeps the newest 1000 of them
// for 30 days at most (Options.PlainRows, PlainAge); encrypted messages
// are kept whole and for good.
//
// # What it does not do
//
// It does not decide trust (package trust does; the store only keeps its
// records), and it keeps no group session keys: a restarted client joins
// its rooms again and is included in new subsessions.
package store
