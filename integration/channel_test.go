//go:build integration

package integration

import (
	"fmt"
	"testing"

	"github.com/mpenc/mpenc/channel"
)

func TestIntegrationBasic(t *testing.T) {
	s := serverFromEnv(t)
	room := s.newRoom(t)
	var cs []*client
	for i := range 3 {
		c := s.dial(t, i, room)
		c.enter()
		cs = append(cs, c)
	}
	for i, c := range cs {
		for k := range 5 {
			c.send(fmt.Sprintf("?mpENC:%d-%d.", i, k))
		}
	}
	for _, c := range cs {
		evs := c.waitFor("15 packets", atLeast(15, channel.EventPacket))
		t.Logf("%s:\n%s", c.ch.Self(), dump(evs))
	}
}
