// Package message is MessageSecurity: it turns a message (parents and an
// encoded body) into an mpENC/1 data packet and back, byte-compatible with
// the reference implementation, and holds the MESSAGE_BODY codec.
//
// # Data packets
//
// [Security.Seal] pads the plaintext (uint16 length ‖ MESSAGE_PARENT* ‖
// MESSAGE_BODY ‖ zeros to 128·2^k bytes, via wire.Plaintext), encrypts it
// with AES-CTR under the whole group key and a fresh 12-byte IV drawn from
// the injected reader, and signs it with our ephemeral key over
// "datamsgsig" ‖ SHA256(sid ‖ gk) ‖ the records from PROTOCOL_VERSION on
// (wire.DataPacket.Sign); SIDKEY_HINT is SHA256(sid ‖ gk)[0] and the message
// id SHA256(signature ‖ signed bytes)[0:20].
//
// [Security.Open] verifies before it decrypts: the hint and the lengths are
// checked first (no cryptography), then the signature, with the channel
// sender's ephemeral key first and every other member's after it, so that a
// packet resent by a third member still names its real author
// (docs/MESSAGE-LAYER.md §4.6); only a verified packet is decrypted. [Trial]
// does this across several subsessions, choosing candidates by the hint.
//
// # Bodies
//
// [EncodeBody] and [DecodeBody]: one type byte ‖ a JSON array written as
// the reference's JSON.stringify writes it: 0 Payload `["text"]`,
// 1 ExplicitAck `[true]` (manual) / `[false]` (automatic), 2 HeartBeat
// (`[]`, decode-only: never sent, docs/MESSAGE-LAYER.md §4.7), 3 Consistency
// `[true]` (FIN) / `[false]` (flush). Decoding is strict: one encoding per
// body, nothing trailing, valid UTF-8.
//
// # What it does not do
//
// It keeps no state about messages: no transcript, dedup, buffering or
// timers (internal/causal and internal/subsession). It never logs; plaintext and
// keys stay inside. The group key is compared with nothing and copied once;
// [Security.Zero] wipes it.
//
// # Concurrency
//
// A Security is not safe for concurrent use: Seal reads the injected random
// source. The owning session serialises calls.
package message
