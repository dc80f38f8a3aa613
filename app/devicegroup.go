package app

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/mpenc/mpenc/crypto"
	"github.com/mpenc/mpenc/internal/keysync"
	"github.com/mpenc/mpenc/store"
	"github.com/mpenc/mpenc/trust"
)

// The device group's state (issue [M], docs/PROTOCOL.md "KeySync", "What
// a group shares"): which own devices are in the group, under which
// labels, since when and on whose word, and the rooms its devices join.
// Each device keeps its copy in a store setting, encoded as on the wire,
// sends it in GroupKeys and OwnKeys messages, and merges what the group's
// devices send (keysync.GroupState.Merge). Trust never comes from it:
// keys are verified by the user, a pairing, or trust messages.

// groupStateSetting names the store setting that keeps the group state.
const groupStateSetting = "keysync.group"

// GroupDevice is one device of the account's device group, as this
// device last heard of it (DeviceGroup).
type GroupDevice struct {
	Key    crypto.PublicKey
	Device string // its full JID when last heard of
	Label  string // the label it announced: its owner's words, sanitise them
	// Status: "in the group", "removed" (by another device) or "left"
	// (by itself).
	Status string
	// Since is when the status was recorded, and By the device that
	// recorded it (a full JID, or the fingerprint of a key no device of
	// the group has).
	Since time.Time
	By    string
}

// DeviceGroup returns the account's device group as this device knows it
// (nil if this device is in none), this device first.
func (a *App) DeviceGroup(ctx context.Context) ([]GroupDevice, error) {
	s, err := a.dev.loadGroup(ctx)
	if err != nil {
		return nil, err
	}
	self := a.key.Public()
	names := map[[32]byte]string{}
	for _, d := range s.Devices {
		names[d.Key] = a.acct.JID + "/" + d.Resource
	}
	out := make([]GroupDevice, 0, len(s.Devices))
	for _, d := range s.Devices {
		by, ok := names[d.By]
		if !ok {
			by = trust.FingerprintOf(crypto.PublicKey(d.By)).String()
		}
		out = append(out, GroupDevice{Key: crypto.PublicKey(d.Key), Device: a.acct.JID + "/" + d.Resource,
			Label: d.Label, Status: d.Status.String(), Since: d.At, By: by})
	}
	slices.SortStableFunc(out, func(x, y GroupDevice) int {
		switch {
		case x.Key == self:
			return -1
		case y.Key == self:
			return 1
		}
		return 0
	})
	return out, nil
}

// loadGroup reads the group state this device keeps (empty if none).
func (d *devices) loadGroup(ctx context.Context) (keysync.GroupState, error) {
	v, ok, err := d.a.st.Setting(ctx, d.a.acct.ID, groupStateSetting)
	if err != nil || !ok || v == "" {
		return keysync.GroupState{}, err // "": the device left its group
	}
	s, err := keysync.DecodeState([]byte(v))
	if err != nil {
		// Our own record: a failed write or an edited database. Start
		// again from what the group sends next.
		d.a.log().Warn("the device group's state unreadable: starting afresh", "err", err)
		return keysync.GroupState{}, nil
	}
	return s, nil
}

// saveGroup writes the group state.
func (d *devices) saveGroup(ctx context.Context, s keysync.GroupState) error {
	p, err := keysync.EncodeState(s)
	if err != nil {
		return err
	}
	return d.a.st.SetSetting(ctx, d.a.acct.ID, groupStateSetting, string(p))
}

// withSelf records this device in s as a member under its current
// resource and label, if it is not so already.
func (d *devices) withSelf(s *keysync.GroupState, now time.Time) {
	self := d.a.key.Public()
	for _, x := range s.Devices {
		if x.Key == self && x.Status == keysync.Member && x.Resource == d.a.res && x.Label == d.a.cfg.Label {
			return
		}
	}
	s.Set(keysync.GroupDevice{Key: self, Resource: d.a.res, Label: d.a.cfg.Label, Status: keysync.Member, At: now, By: self})
}

// groupPayload is what this device sends in GroupKeys and OwnKeys
// messages: its group state with itself, the partner of the pairing (a
// full JID, whose key the pairing's session authenticated, or "") and
// the rooms it joins at start (d.op held).
func (d *devices) groupPayload(ctx context.Context, partner string) []byte {
	s, err := d.loadGroup(ctx)
	if err != nil {
		d.a.log().Warn("reading the device group's state", "err", err)
	}
	now := time.Now()
	d.withSelf(&s, now)
	if ds := d.ks.bound[partner]; ds != nil {
		d.addPartner(&s, partner, ds.s.Peer().Identity, now)
	}
	var joined []string
	if rooms, err := d.a.SavedRooms(ctx); err == nil {
		for _, r := range rooms {
			joined = append(joined, r.JID)
		}
	}
	// And the rooms it is in now (a client's configuration file lists
	// rooms it joins at start without remembering them in the store).
	d.a.mu.Lock()
	for jid := range d.a.rooms {
		joined = append(joined, jid)
	}
	d.a.mu.Unlock()
	slices.Sort(joined)
	for _, r := range joined {
		if len(s.Rooms) < keysync.MaxGroupRooms && !slices.Contains(s.Rooms, r) {
			s.Rooms = append(s.Rooms, r)
		}
	}
	p, err := keysync.EncodeState(s)
	if err != nil {
		d.a.log().Warn("encoding the device group's state", "err", err)
		return nil
	}
	return p
}

// addPartner records the paired device in s as a member on this
// device's word, unless s has it already as a member, or removed.
func (d *devices) addPartner(s *keysync.GroupState, partner string, key crypto.PublicKey, now time.Time) {
	for _, x := range s.Devices {
		// Its own record of itself ("I joined") is replaced by ours: we
		// paired it. A removed one stays removed.
		if x.Key == key && (x.Status != keysync.Member || x.By == d.a.key.Public()) {
			return
		}
	}
	_, res, _ := strings.Cut(partner, "/")
	s.Set(keysync.GroupDevice{Key: key, Resource: res, Label: d.publishedLabel(partner), Status: keysync.Member,
		At: now, By: d.a.key.Public()})
}

// publishedLabel is the label an own device (full JID) has in the cached
// device list, "" if none.
func (d *devices) publishedLabel(device string) string {
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, x := range d.lists[d.a.acct.JID].devices {
		if d.a.acct.JID+"/"+x.Resource == device {
			return x.Label
		}
	}
	return ""
}

// mergeGroup merges a group state a device of the group sent (from, a
// full JID) into ours and saves it; it tells the user of the changes to
// other devices than this one and the sender if tell, and returns the rooms new
// to this device (d.op held).
func (d *devices) mergeGroup(ctx context.Context, from string, other keysync.GroupState, tell bool) []string {
	s, err := d.loadGroup(ctx)
	if err != nil {
		d.a.log().Warn("reading the device group's state", "err", err)
		return nil
	}
	d.withSelf(&s, time.Now())
	// What others say of this device does not replace what it says of
	// itself.
	self := d.a.key.Public()
	other.Devices = slices.DeleteFunc(slices.Clone(other.Devices), func(x keysync.GroupDevice) bool { return x.Key == self })
	changed := s.Merge(other)
	if err := d.saveGroup(ctx, s); err != nil {
		d.a.log().Warn("saving the device group's state", "err", err)
	}
	if len(changed) > 0 {
		d.a.hist.wake() // devices to add to the archive, or to revoke
	}
	fromName := d.deviceName(from)
	for _, c := range changed {
		if !tell || c.Key == self || d.a.acct.JID+"/"+c.Resource == from {
			continue
		}
		name := d.deviceName(d.a.acct.JID + "/" + c.Resource)
		switch c.Status {
		case keysync.Member:
			d.a.q.push(Event{Kind: EventPairing, Text: name + " is in your device group (on the word of " + fromName + ")"})
		case keysync.Removed:
			d.a.q.push(Event{Kind: EventPairing, Text: name + " was removed from your device group (on the word of " + fromName + ")"})
		case keysync.Left:
			d.a.q.push(Event{Kind: EventPairing, Text: name + " left your device group (on the word of " + fromName + ")"})
		}
	}
	saved, err := d.a.SavedRooms(ctx)
	if err != nil {
		return nil
	}
	var fresh []string
	for _, r := range other.Rooms {
		if !slices.ContainsFunc(saved, func(x store.Room) bool { return x.JID == r }) && d.a.Room(r) == nil {
			fresh = append(fresh, r) // neither remembered nor joined here
		}
	}
	return fresh
}

// onGroupState handles the group state a GroupKeys or OwnKeys message
// carried from ds, accepted by the machine: from the partner of a
// pairing it waits until the group forms (grouped); from a device of the
// group (authenticated here) it is merged now (d.op held).
func (d *devices) onGroupState(ctx context.Context, ds *devSession, payload []byte) {
	from := ds.fullJID()
	if len(payload) == 0 {
		return
	}
	s, err := keysync.DecodeState(payload)
	if err != nil {
		d.a.log().Info("a device group state refused", "from", from, "err", err)
		return
	}
	if d.ks.bound[from] == ds && d.ks.provisional[from] != (crypto.PublicKey{}) {
		d.ks.received[from] = s
		return
	}
	if d.peerState(ds) == trust.Authenticated && d.ks.m.State() == keysync.Grouped {
		if rooms := d.mergeGroup(ctx, from, s, true); len(rooms) > 0 {
			// A device already set up is told, not moved: only a device
			// that joins the group joins its rooms (grouped).
			d.a.q.push(Event{Kind: EventPairing,
				Text: fmt.Sprintf("your other devices join %d room(s) this device does not: %s (/join to enter one here)", len(rooms), strings.Join(rooms, ", "))})
		}
	}
}

// LeaveDeviceGroup makes this device leave the account's device group
// for good: it tells the group's devices (which distrust its key, and
// tell your contacts' devices, whose clients then exclude it from the
// rooms they share), and forgets the group. A device that left cannot
// pair again under the same key: to use the account here again, start
// with a new store. Use it before giving a device away.
func (a *App) LeaveDeviceGroup(ctx context.Context) error {
	if _, err := a.account(ctx); err != nil {
		return err
	}
	d := a.dev
	d.op.Lock()
	if d.closed {
		d.op.Unlock()
		return errClosed
	}
	if d.ks == nil || d.ks.m.State() == keysync.Sole || d.ks.m.State() == keysync.End {
		d.op.Unlock()
		return errors.New("app: this device is in no device group")
	}
	s, err := d.loadGroup(ctx)
	d.op.Unlock()
	if err != nil {
		return err
	}
	p, err := keysync.Encode(keysync.Message{Type: keysync.LeaveGroup})
	if err != nil {
		return err
	}
	// Told first (SendToDevice takes d.op), over the device channel,
	// which keeps what it could not deliver yet until a session carries
	// it; the group is forgotten only once every member was told.
	sent := 0
	var unreachable []string
	for _, x := range s.Devices {
		if x.Key == a.key.Public() || x.Status != keysync.Member {
			continue
		}
		if st, _ := a.trustStateOf(a.acct.JID, x.Key); st == trust.Distrusted {
			continue // removed meanwhile (its removal did not reach our record)
		}
		if err := a.SendToDevice(ctx, a.acct.JID+"/"+x.Resource, p); err != nil {
			if errors.Is(err, errNoDevice) {
				// Off the device list (removed, or gone): it has no
				// channel to be told over.
				unreachable = append(unreachable, x.Resource)
				continue
			}
			return fmt.Errorf("app: telling %s that this device leaves (nothing forgotten yet: try again): %w", x.Resource, err)
		}
		sent++
	}
	if sent == 0 {
		// No record of the group's members (a group formed before
		// devices kept one): every listed device is told.
		go d.toOwnDevices(p, "")
	}
	d.op.Lock()
	defer d.op.Unlock()
	for _, name := range []string{groupStateSetting, groupedSetting} {
		if err := a.st.SetSetting(ctx, a.acct.ID, name, ""); err != nil {
			return err
		}
	}
	if err := a.st.SetSetting(ctx, a.acct.ID, leftSetting, "1"); err != nil {
		return err
	}
	if err := d.startKeySync(ctx, false); err != nil {
		return err
	}
	d.ks.quiet = true
	text := "this device left your device group: your other devices distrust its key from now on, " +
		"and your contacts' devices follow them. To use your account here again, start with a new store and pair it"
	if len(unreachable) > 0 {
		text += fmt.Sprintf(" (not told: %s, no longer in your device list)", strings.Join(unreachable, ", "))
	}
	a.q.push(Event{Kind: EventPairing, Text: text})
	return nil
}

// onLeave handles a device's LeaveGroup: from a device of the group (its
// key authenticated here), its key is distrusted, which trust messages
// tell the devices that trust ours, and the group records that it left
// (d.op held).
func (d *devices) onLeave(ctx context.Context, ds *devSession) {
	from := ds.fullJID()
	if d.peerState(ds) != trust.Authenticated {
		d.a.log().Info("a LeaveGroup from a device not verified here: ignored", "from", from)
		return
	}
	key := ds.s.Peer().Identity
	if _, err := d.a.trust.DistrustLeft(d.a.acct.JID, key); err != nil {
		d.a.log().Warn("distrusting a device that left", "device", from, "err", err)
		return
	}
	s, err := d.loadGroup(ctx)
	if err == nil {
		_, res, _ := strings.Cut(from, "/")
		label := d.publishedLabel(from)
		for _, x := range s.Devices {
			if x.Key == key {
				label = x.Label
			}
		}
		s.Set(keysync.GroupDevice{Key: key, Resource: res, Label: label, Status: keysync.Left, At: time.Now(), By: key})
		if err := d.saveGroup(ctx, s); err != nil {
			d.a.log().Warn("saving the device group's state", "err", err)
		}
	}
	d.a.q.push(Event{Kind: EventPairing, Device: from, Warning: true,
		Text: d.deviceName(from) + " left your device group: its key is distrusted here and by the devices that trust this one"})
	d.a.hist.wake() // revoked at the archive
}

// markRemoved records in the group's record that the device of key was
// removed, on the word of the device whose key is by (d.op held).
func (d *devices) markRemoved(key, by crypto.PublicKey) {
	ctx := context.Background()
	s, err := d.loadGroup(ctx)
	if err != nil {
		return
	}
	for _, x := range s.Devices {
		if x.Key == key && x.Status == keysync.Member {
			x.Status, x.At, x.By = keysync.Removed, time.Now(), by
			s.Set(x)
			if err := d.saveGroup(ctx, s); err != nil {
				d.a.log().Warn("saving the device group's state", "err", err)
			}
			d.a.hist.wake() // revoked at the archive
			return
		}
	}
}

// trustStateOf is the state of key for account in the trust store (0 if
// unknown).
func (a *App) trustStateOf(account string, key crypto.PublicKey) (trust.State, error) {
	recs, err := a.trust.Keys(account)
	if err != nil {
		return 0, err
	}
	for _, r := range recs {
		if r.Key == key {
			return r.State, nil
		}
	}
	return 0, nil
}

// leftOrRemoved reports whether our record of the group has the device
// of key as removed or left: such a device does not pair again (under
// that key), whatever the trust store says of it (d.op held).
func (d *devices) leftOrRemoved(ctx context.Context, key crypto.PublicKey) bool {
	s, err := d.loadGroup(ctx)
	if err != nil {
		return false
	}
	for _, x := range s.Devices {
		if x.Key == key {
			return x.Status != keysync.Member
		}
	}
	return false
}
