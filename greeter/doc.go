// Package greeter implements the membership operations of mpENC/1: CLIQUES
// group key agreement over X25519 combined with the ASKE authenticated
// signature key exchange (design document sections 3.2 and 5.2), byte for
// byte as the reference implementation put them on the wire.
//
// This file holds the ASKE constructions: the session id and the session
// signatures made with static identity keys.
package greeter
