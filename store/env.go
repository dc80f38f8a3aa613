package store

import "unsafe"

// scrubEnv overwrites the value of the environment variable name, which
// os.LookupEnv returned as value, where the process keeps it: Go's copy
// (value is a substring of the runtime's copy of "name=value", made on the
// heap at start or by os.Setenv, so writing to it is safe), and the
// initial environment on the stack where the system has one
// (scrubInitialEnv). Best effort: what it cannot reach stays.
func scrubEnv(name, value string) {
	if len(value) > 0 {
		clear(unsafe.Slice(unsafe.StringData(value), len(value)))
	}
	_ = scrubInitialEnv(name)
}
