package session

import (
	"time"

	"github.com/mpenc/mpenc/internal/greeting"
	"github.com/mpenc/mpenc/internal/serverorder"
)

// ServerOrderOf gives the scenario tests read access to a core's
// concurrency resolver.
func ServerOrderOf(c *Core) *serverorder.Resolver { return &c.so }

// LettersOf gives the scenario tests the internal state as the design's
// four letters.
func LettersOf(c *Core) string { return c.letters() }

// GroupStateOf gives the scenario tests a core's group state.
func GroupStateOf(c *Core) *greeting.State { return c.state }

// FinishingOf reports how many previous subsessions a core still shuts down.
func FinishingOf(c *Core) int { return len(c.prevs) }

// InSubsession reports whether a core has a current subsession.
func InSubsession(c *Core) bool { return c.cur != nil }

// Rekey makes a core propose a fresh START of its group now, as it does
// by itself after Config.RekeyOps operations (benchmarks).
func Rekey(c *Core, now time.Time) error {
	c.advance(now)
	defer c.after()
	return c.propose(c.sessionMembers(), OpStart, nil, nil)
}
