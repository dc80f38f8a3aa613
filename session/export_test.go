package session

import "github.com/mpenc/mpenc/internal/serverorder"

// ServerOrderOf gives the scenario tests read access to a core's
// concurrency resolver.
func ServerOrderOf(c *Core) *serverorder.Resolver { return &c.so }
