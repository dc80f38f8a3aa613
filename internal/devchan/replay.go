package devchan

// replayFilter is a sliding window over received sequence numbers, as
// wireguard-go's replay.Filter: the newest sequence seen and a bitmap of
// the windowSize before it. A sequence older than the window is refused
// (its key is gone anyway unless skipped and kept, and then the window
// still says whether it came).
type replayFilter struct {
	started bool
	top     uint64 // the highest sequence marked
	// bits has one word more than the window needs, as wireguard-go's
	// ring has: the word of top and the word of top − (windowSize − 1)
	// are then never the same word.
	bits [windowSize/64 + 1]uint64
}

// windowSize is the number of sequences the filter remembers.
const windowSize = 2048

// fresh reports whether seq has not been marked and is within the window.
func (f *replayFilter) fresh(seq uint64) bool {
	if !f.started || seq > f.top {
		return true
	}
	if f.top-seq >= windowSize {
		return false
	}
	return f.bits[(seq/64)%uint64(len(f.bits))]&(1<<(seq%64)) == 0
}

// mark records seq (which fresh accepted).
func (f *replayFilter) mark(seq uint64) {
	if !f.started {
		f.started, f.top = true, seq
		clear(f.bits[:])
	} else if seq > f.top {
		// Clear the words the window slides onto: those after top's
		// word, up to seq's (all of them when it slides a whole window).
		words := uint64(len(f.bits))
		from, to := f.top/64+1, seq/64
		if to >= from {
			if to-from >= words {
				clear(f.bits[:])
			} else {
				for w := from; w <= to; w++ {
					f.bits[w%words] = 0
				}
			}
		}
		f.top = seq
	}
	f.bits[(seq/64)%uint64(len(f.bits))] |= 1 << (seq % 64)
}
