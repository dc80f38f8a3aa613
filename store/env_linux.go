package store

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"strconv"
)

// maxEnvBlock bounds the initial environment read back: the kernel
// limits arguments and environment together to a quarter of the stack
// limit, a few MiB in practice.
const maxEnvBlock = 16 << 20

// scrubInitialEnv overwrites with zero bytes the values of every entry
// "name=..." of the process's initial environment: the strings the
// kernel put on the stack at exec, between the env_start and env_end of
// /proc/self/stat, which /proc/PID/environ shows to the process's owner
// and to root. Go copies them at start and never writes them, so they
// stay readable there for the life of the process unless overwritten. It
// writes through /proc/self/mem, which Linux allows a process on its own
// writable memory.
func scrubInitialEnv(name string) error {
	stat, err := os.ReadFile("/proc/self/stat")
	if err != nil {
		return err
	}
	// Fields after the command name, which is in parentheses and may
	// hold anything: field 3 onwards. env_start and env_end are fields
	// 50 and 51 (proc(5), Linux 3.5 and later).
	i := bytes.LastIndexByte(stat, ')')
	if i < 0 {
		return errors.New("store: /proc/self/stat unreadable")
	}
	f := bytes.Fields(stat[i+1:])
	if len(f) < 51-2 {
		return errors.New("store: /proc/self/stat has no env_start")
	}
	start, err1 := strconv.ParseInt(string(f[50-3]), 10, 64)
	end, err2 := strconv.ParseInt(string(f[51-3]), 10, 64)
	if err1 != nil || err2 != nil || start <= 0 || end <= start || end-start > maxEnvBlock {
		return fmt.Errorf("store: initial environment at %q..%q", f[50-3], f[51-3])
	}
	mem, err := os.OpenFile("/proc/self/mem", os.O_RDWR, 0)
	if err != nil {
		return err
	}
	defer mem.Close()
	block := make([]byte, end-start)
	defer clear(block)
	if _, err := mem.ReadAt(block, start); err != nil {
		return err
	}
	prefix := []byte(name + "=")
	var firstErr error
	for off := 0; off < len(block); {
		n := bytes.IndexByte(block[off:], 0)
		if n < 0 {
			n = len(block) - off
		}
		if entry := block[off : off+n]; bytes.HasPrefix(entry, prefix) && len(entry) > len(prefix) {
			value := entry[len(prefix):]
			clear(value)
			if _, err := mem.WriteAt(value, start+int64(off+len(prefix))); err != nil && firstErr == nil {
				firstErr = err
			}
		}
		off += n + 1
	}
	return firstErr
}
