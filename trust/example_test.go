package trust_test

import (
	"fmt"

	"github.com/mpenc/mpenc/crypto"
	"github.com/mpenc/mpenc/trust"
)

func ExampleFingerprintOf() {
	var key crypto.PublicKey
	for i := range key {
		key[i] = byte(i)
	}
	f := trust.FingerprintOf(key)
	fmt.Println(f)
	fmt.Println(f.Words())
	fmt.Println(trust.URI("alice@example.org/phone", key))
	// Output:
	// 9841 6545 49ca a879 78e5 515a db40 7d6b
	// meteor doctor glove drum earth raven olive jaguar jacket tomato falcon fossil spoon dinner jigsaw harbor
	// xmpp:alice@example.org?trust-message;encryption=https://github.com/mpenc/mpenc/ns/identity/1;trust=000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f
}
