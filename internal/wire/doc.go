// Package wire is the mpENC/1 wire codec: TLV records, the "?mpENC:" armour,
// the record, message, greeting and severity codes, the exact record layouts
// of greeting, data, error and query packets, the data-plaintext padding, and
// the ServerOrder packet-id and chain-hash computations that hash wire bytes.
//
// mpENC/1 is byte-compatible with the reference implementation (mpenc_js
// f26cc30); docs/PROTOCOL.md records every layout and constant.
//
// # Strict decoding
//
// Everything handed to this package is assumed hostile. Decoders:
//
//   - check sizes before allocating: [MaxPacketSize] bytes per packet,
//     [MaxRecords] records, [MaxRepeated] records of one repeated type,
//     [MaxIDSize] bytes per participant id;
//   - require exact lengths for fixed-size records (signatures, keys, nonces,
//     hashes, ids, IVs, one-byte codes);
//   - accept each packet type only in its one record order, with no unknown,
//     repeated or trailing records and no bytes after the last record;
//   - accept only canonical base64 (standard alphabet, padded, no line
//     breaks, zero trailing bits), so that one packet has one wire string;
//   - copy their input, so the caller may reuse its buffer;
//   - return errors that wrap one of the Err* sentinels, inside an [*Error]
//     saying which record and offset failed.
//
// For every input a decoder accepts, encoding the result gives back the
// input byte for byte (the fuzz targets check this).
//
// The package does no cryptography beyond hashing and the message-signature
// helpers in sign.go; it does not verify anything by itself.
package wire
