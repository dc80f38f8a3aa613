// Package trust binds identity keys to JIDs and decides which keys may be
// used: the trust store and its policy (XEP-0450 trust states), key
// fingerprints for people to compare, and the key directory a session
// uses.
//
// It is pure: no I/O and no SQL. Persistence is behind [Backend], which
// package store implements over SQLite.
//
// # Model
//
// Trust is kept per (bare JID, key): an account (XEP-0450's identity) has
// one key per device (endpoint). Each key is [Undecided], [BlindlyTrusted],
// [Authenticated], [Distrusted] or [AutoDistrusted], with the cause of
// its last decision (Record.Cause). The store also keeps a [Binding] per
// member (full JID, the participant id): the key it announced last and
// the key it is known by. A device keeps its key for life, so a member
// that announces another key is noticed, and not trusted until the user
// decides, even when the account has that key from another device.
//
// # Entry points
//
//   - [New] makes a [Store] over a Backend with a [Policy]:
//     [BlindTrustBeforeVerification] (XEP-0450's recommendation, the
//     default) or [AuthenticatedOnly] (bots).
//   - [Directory] is a session's key directory (greeter.Directory and
//     session.KeyObserver). [Directory.ObserveKey] records an announced
//     key and hands OnDecision a [Decision], data in the manner of
//     ssh/knownhosts: [KeyNew], [KeyNewDevice], [KeyKnown], [KeyChanged]
//     (a loud warning; the new key never replaces the old one and is not
//     used for that member until the user decides about it),
//     [KeyClaimed] (a loud warning: another account has the key, or
//     another member of the same account present in the room announced
//     it first) or [KeyDistrusted]; a warning is also its error, which
//     the session shows. Decision.Own marks another device of our own
//     account. [Directory.SetPresent] tells the directory who is in its
//     room, in order with the announcements.
//     [Directory.IdentityKey] answers only keys the policy allows and
//     refuses the rest with an error saying why; [Directory.Current]
//     gives the record it judges by.
//   - [Store.Verify], [Store.Trust], [Store.Distrust] record the user's
//     decisions; [Store.Current] gives the record of the key a member
//     announced last. New keys, new devices, changed keys and every
//     decision go into the trust history ([Event], worded by
//     [Event.String]); [Store.Why] gives the chain of causes of a key's
//     state, and Config.OnChange receives each decision as it is made.
//   - Automatic trust management (XEP-0450 over XEP-0434 trust
//     messages, docs/PROTOCOL.md "Trust messages"): after the user's
//     decision, [Store.Vouches] gives the trust messages to send, each
//     for a device whose key is authenticated; [Store.HandleTrustMessage]
//     applies one received over the device channel, or parks it
//     ([Parked]) until its sender's key is authenticated.
//   - [FingerprintOf] gives a key's [Fingerprint], shown as hex groups
//     ([Fingerprint.String]) or words ([Fingerprint.Words]); [Matches]
//     checks what a user typed against a key; [URI] is the payload of a QR
//     code.
//
// # What it does not do
//
// It does not judge JIDs (callers pass them as the XMPP layer normalised
// them), render QR codes (the client does), nor carry trust messages:
// the caller sends and receives them over the device channel. Nothing
// here is secret: identity public keys, fingerprints and trust states;
// private keys are package store's business.
//
// # Concurrency
//
// A [Store] is safe for concurrent use if its Backend is (both of this
// project's are): each method is one backend transaction, so concurrent
// observations of the same JID cannot both record a "first" key.
package trust
