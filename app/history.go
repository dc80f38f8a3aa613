package app

import (
	"bytes"
	"cmp"
	"context"
	"crypto/ecdh"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"slices"
	"sync"
	"time"

	"mellium.im/xmpp/jid"

	"github.com/mpenc/mpenc/crypto"
	"github.com/mpenc/mpenc/internal/archive"
	"github.com/mpenc/mpenc/internal/history"
	"github.com/mpenc/mpenc/internal/keysync"
	"github.com/mpenc/mpenc/internal/primitive"
	"github.com/mpenc/mpenc/internal/recrypt"
	"github.com/mpenc/mpenc/session"
	"github.com/mpenc/mpenc/trust"
)

// The own archive (issue [N], docs/PROTOCOL.md "History: the own
// archive"): the account's devices keep their rooms' messages at a
// history service (mpenc-bot) that cannot read them, so that a device
// that joins the device group later reads what the others saw. One
// device turns it on and is the archive's admin: it holds the admin
// secret a of each epoch and adds the group's devices as members. Every
// device writes its own pages; every device reads the others'.

const (
	// nsArchiveKeys is the device channel payload that hands the
	// archive's keys to another device of the group.
	nsArchiveKeys = "https://github.com/mpenc/mpenc/ns/archive/1"
	// historySetting is the secret setting that holds ownArchive.
	historySetting = "history.own"
	// historyEvery is how often the archive's loop writes what is new
	// and retries what failed.
	historyEvery = 5 * time.Second
	// historyReadEvery is how often a device reads what the others
	// wrote, besides at start and when keys arrive.
	historyReadEvery = 10 * time.Minute
	// historyTimeout bounds one request to the service.
	historyTimeout = 20 * time.Second
	// maxArchiveEpochs bounds the epochs kept (a removal starts one).
	maxArchiveEpochs = 32
	// maxArchiveKeys bounds the keys payload we read.
	maxArchiveKeys = 16 << 10
	// pageBudget is what a page's records may take before encoding
	// (history.MaxPageSize less room for its header and MAC).
	pageBudget = history.MaxPageSize - 4<<10
	// epochLifetime: the admin device starts a new epoch this long after
	// the last began.
	epochLifetime = 90 * 24 * time.Hour
	// maxShownWarnings bounds the problems one read shows one by one.
	maxShownWarnings = 10
	// maxArchiveWriters bounds the heads kept per epoch.
	maxArchiveWriters = 256
	// fetchRounds bounds the fetches of one read of one epoch
	// (fetchRounds × archive.MaxFetch pages).
	fetchRounds = 2048
)

// epochState is one epoch of the own archive: a group at the service.
type epochState struct {
	Group archive.GroupID
	Epoch uint64
	A     recrypt.Point
	MAC   [32]byte
	// Started is when the admin device began the epoch (admin only).
	Started time.Time `json:",omitzero"`
	// Admin is a (admin devices only); AdminSeq the last admin request's
	// number; Members the devices added (full JID → key) and Revoked
	// the ones revoked.
	Admin    *recrypt.Scalar             `json:",omitempty"`
	AdminSeq uint64                      `json:",omitempty"`
	Members  map[string]crypto.PublicKey `json:",omitempty"`
	Revoked  []string                    `json:",omitempty"`
	// This device's chain as a writer: the next page's index and the
	// hash it names.
	Index uint64
	Prev  history.Hash
	// What this device read: the service's last number and each
	// writer's chain end; Heads are points other devices said each
	// writer's chain reached.
	After uint64
	Ends  map[string]history.ChainEnd `json:",omitempty"`
	Heads map[string]history.Hash     `json:",omitempty"`
}

func (e *epochState) context() []byte {
	return binary.BigEndian.AppendUint64(append([]byte(nil), e.Group[:]...), e.Epoch)
}

// ownArchive is the archive's state on this device (sealed in the store).
type ownArchive struct {
	V       int
	Service string // the service's full JID
	Epochs  []epochState
	// Writing: this device writes its pages (off after /history off).
	Writing bool
	// Cursor: the store's entries up to this Seq are archived (or were
	// not messages). Pending, when set, is the page being written: the
	// entries up to PendingTo, as page Index of the last epoch.
	Cursor    int64
	PendingTo int64 `json:",omitempty"`
	// Seed makes this device's page sealing deterministic (t and the
	// page id from the seed and the page), so that a page retried after
	// a crash is the same page and the service stores it once.
	Seed [32]byte
	// KeysSent: how many epochs each device of the group was given.
	KeysSent map[string]int `json:",omitempty"`
	// Revoked: the service said this device is no longer a member (it
	// was removed from the group): it neither writes nor reads.
	Revoked bool `json:",omitempty"`
	// Waiting: an epoch's entry for this device is not there yet (the
	// admin device adds it): the loop reads again until it is.
	Waiting bool `json:",omitempty"`
}

// archiveKeys is what one device hands another: every epoch without
// its admin secret, and the chain heads it knows.
type archiveKeys struct {
	V       int
	Service string
	Epochs  []epochState
}

// HistoryInfo says where the own archive stands on this device.
type HistoryInfo struct {
	On      bool   // this device has the archive's keys
	Service string // the history service's address
	Admin   bool   // this device adds the group's devices
	Writing bool   // this device writes its rooms' messages there
	// Revoked: the service no longer lets this device read or write
	// (it was removed from your device group).
	Revoked bool
	// Waiting: the device that turned history on has not added this one
	// yet; it reads by itself once it has.
	Waiting bool
	// Unreachable: the last attempt to write or read did not reach the
	// service (what this device sees is written once it does).
	Unreachable bool
}

// errHistory is the error (wrapped) of a history request the service
// refused or did not answer.
var errHistory = errors.New("app: history service")

// errNotAnAddress: what the user gave as a service is not a JID with a
// local part.
var errNotAnAddress = errors.New("app: not the address of a history service")

type archiver struct {
	a    *App
	op   sync.Mutex // one operation on the state at a time
	kick chan struct{}
	keys chan directKeys
	// unreachable: the last request did not reach the service (said
	// once when it starts and once when it ends; h.op held).
	unreachable bool
	// lastRead is when the loop last read (h.op held).
	lastRead time.Time
	// parked are keys from own devices not verified yet (h.op held).
	parked []directKeys
	// stored is the state as the store holds it, marshalled (h.op held).
	stored []byte

	// Tests replace the network: send carries a request to the service
	// (default: the account's HistoryRequest), deliver a keys payload to
	// a device (default: the device channel), connect opens the account.
	send    func(ctx context.Context, service string, req []byte) ([]byte, error)
	deliver func(ctx context.Context, device string, payload []byte) error
	connect func(ctx context.Context) error
	clock   func() time.Time // default time.Now
}

func (h *archiver) now() time.Time {
	if h.clock != nil {
		return h.clock()
	}
	return time.Now()
}

// reached records whether a request reached the service, and says so
// when that changes (h.op held).
func (h *archiver) reached(service string, err error) {
	down := err != nil && !errors.Is(err, archive.ErrRefused) && !errors.Is(err, archive.ErrNotFound) &&
		!errors.Is(err, archive.ErrRevoked) && !errors.Is(err, archive.ErrBusy)
	switch {
	case down && !h.unreachable:
		h.a.log().Info("history: the service is not reachable", "err", err)
		h.a.q.push(Event{Kind: EventHistory, Text: fmt.Sprintf("history: %s does not answer; what this device sees is written there once it does", trust.Bare(service))})
	case !down && h.unreachable:
		h.a.q.push(Event{Kind: EventHistory, Text: fmt.Sprintf("history: %s answers again", trust.Bare(service))})
	}
	h.unreachable = down
}

type directKeys struct {
	from string
	key  crypto.PublicKey
	p    []byte
	at   time.Time // when it was parked
}

// Keys from an own device not verified here yet (they can overtake the
// end of the pairing that verifies it) wait, at most maxParkedKeys of
// them for parkedKeysFor, and are taken once it is verified.
const (
	maxParkedKeys = 8
	parkedKeysFor = 10 * time.Minute
)

func newArchiver(a *App) *archiver {
	return &archiver{a: a, kick: make(chan struct{}, 1), keys: make(chan directKeys, 8)}
}

// wake makes the loop look at the group and the store now.
func (h *archiver) wake() {
	select {
	case h.kick <- struct{}{}:
	default:
	}
}

func (h *archiver) load(ctx context.Context) (*ownArchive, error) {
	b, ok, err := h.a.st.SecretSetting(ctx, h.a.acct.ID, h.a.key, historySetting)
	if err != nil || !ok {
		return nil, err
	}
	var s ownArchive
	if err := json.Unmarshal(b, &s); err != nil || s.V != 1 {
		return nil, fmt.Errorf("app: the archive's state does not read: %v", err)
	}
	h.stored = b
	return &s, nil
}

// save stores s, unless it is what the store holds already (the loop
// looks every 5 s: a write, and its fsync, only when something changed).
func (h *archiver) save(ctx context.Context, s *ownArchive) error {
	b, err := json.Marshal(s)
	if err != nil {
		return err
	}
	if bytes.Equal(b, h.stored) {
		return nil
	}
	if err := h.a.st.SetSecretSetting(ctx, h.a.acct.ID, h.a.key, historySetting, b, nil); err != nil {
		return err
	}
	h.stored = b
	return nil
}

// request sends one request to the service and returns its answer.
func (h *archiver) request(ctx context.Context, service string, r archive.Request) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, historyTimeout)
	defer cancel()
	send := h.send
	if send == nil {
		xa, err := h.a.account(ctx)
		if err != nil {
			return nil, err
		}
		send = xa.HistoryRequest
	}
	b, err := send(ctx, service, archive.EncodeRequest(r))
	if err != nil {
		return nil, fmt.Errorf("%w: %w", errHistory, err)
	}
	return b, nil
}

func (h *archiver) self() string { return h.a.acct.JID + "/" + h.a.res }

// findService turns the address the user gave into the full JID of a
// device that answers history requests: a full JID as it is, a bare JID
// through its published device list.
func (h *archiver) findService(ctx context.Context, addr string) (string, error) {
	j, err := jid.Parse(addr)
	if err != nil || j.Localpart() == "" {
		return "", errNotAnAddress
	}
	connect := h.connect
	if connect == nil {
		connect = h.a.Connect
	}
	if err := connect(ctx); err != nil {
		return "", err
	}
	var fulls []string
	if j.Resourcepart() != "" {
		fulls = []string{j.String()}
	} else {
		devs, err := h.a.PublishedDevices(ctx, j.String())
		if err != nil {
			return "", fmt.Errorf("app: the devices of %s: %w", j, err)
		}
		for _, d := range devs {
			fulls = append(fulls, j.String()+"/"+d.Resource)
		}
	}
	probe := archive.Fetch{Time: time.Now()} // a fetch of no group: a service answers "not found"
	for _, full := range fulls {
		b, err := h.request(ctx, full, probe)
		if err == nil && errors.Is(archive.DecodeAnswer(b), archive.ErrNotFound) {
			return full, nil
		}
	}
	return "", fmt.Errorf("%w: no device of %s answers as a history service", errHistory, j)
}

// EnableHistory turns on the own archive at the history service addr
// (a bot's JID), with this device as its admin, and has this device
// write its rooms' messages there from now on: the account's other
// devices in the device group get the archive's keys over the device
// channel (a device that joins the group later too) and read what the
// others wrote. Messages written there lose forward secrecy: the service
// and any one stolen device together can read them (docs/USAGE.md
// "History"). Called again after DisableHistory, it writes again.
func (a *App) EnableHistory(ctx context.Context, addr string) error {
	h := a.hist
	h.op.Lock()
	defer h.op.Unlock()
	s, err := h.load(ctx)
	if err != nil {
		return err
	}
	if s != nil {
		switch {
		case s.Revoked:
			return fmt.Errorf("this device can no longer use your history at %s: it was removed from your device group", trust.Bare(s.Service))
		case addr != "" && trust.Bare(addr) != trust.Bare(s.Service) && addr != s.Service:
			return fmt.Errorf("your history is kept at %s already; another service is not supported yet", trust.Bare(s.Service))
		}
		s.Writing = true
		if err := h.save(ctx, s); err != nil {
			return err
		}
		h.wake()
		return nil
	}
	service, err := h.findService(ctx, addr)
	if errors.Is(err, errNotAnAddress) {
		return fmt.Errorf("%s is not an address: give the history service's, bot@example.org", oneLineJID(addr))
	}
	if err != nil {
		a.log().Info("history: no service found", "address", addr, "err", err)
		return fmt.Errorf("%s does not answer as a history service (a bot with history_service in its configuration, online)", oneLineJID(addr))
	}
	s = &ownArchive{V: 1, Service: service, Writing: true}
	if err := primitive.RandomBytes(nil, s.Seed[:]); err != nil {
		return err
	}
	// The archive covers what the store records from now on.
	s.Cursor = a.lastSeq(ctx)
	if err := h.newEpoch(ctx, s); err != nil {
		a.log().Info("history: creating the archive", "service", service, "err", err)
		return fmt.Errorf("%s refused to keep your history, or did not answer", trust.Bare(service))
	}
	if err := h.save(ctx, s); err != nil {
		return err
	}
	a.log().Info("history on", "service", service)
	h.wake()
	return nil
}

// lastSeq is the Seq of the newest entry in the store (0 if none, or
// if it cannot be read: then everything is taken as new).
func (a *App) lastSeq(ctx context.Context) int64 {
	last, err := a.st.LastSeq(ctx, a.acct.ID)
	if err != nil {
		a.log().Warn("history: the store's last entry", "err", err)
	}
	return last
}

// DisableHistory stops this device writing to the own archive (it keeps
// the keys, and reads what the others write).
func (a *App) DisableHistory(ctx context.Context) error {
	h := a.hist
	h.op.Lock()
	defer h.op.Unlock()
	s, err := h.load(ctx)
	if err != nil {
		return err
	}
	if s == nil {
		return errors.New("history is off on this device already")
	}
	s.Writing = false
	return h.save(ctx, s)
}

// HistoryStatus says where the own archive stands on this device.
func (a *App) HistoryStatus(ctx context.Context) (HistoryInfo, error) {
	h := a.hist
	h.op.Lock()
	defer h.op.Unlock()
	s, err := h.load(ctx)
	if err != nil || s == nil {
		return HistoryInfo{}, err
	}
	admin := len(s.Epochs) > 0 && s.Epochs[len(s.Epochs)-1].Admin != nil
	return HistoryInfo{On: true, Service: s.Service, Admin: admin, Writing: s.Writing && !s.Revoked,
		Revoked: s.Revoked, Waiting: s.Waiting, Unreachable: h.unreachable}, nil
}

// FetchHistory reads what the account's other devices wrote to the own
// archive since the last read, now (it is read at each start, when the
// keys arrive, and every 10 minutes): new messages come as EventEntry
// (Entry.Archived), and an EventHistory says what was read, every
// problem, and why a read stopped (which is not an error here).
func (a *App) FetchHistory(ctx context.Context) error {
	h := a.hist
	h.op.Lock()
	defer h.op.Unlock()
	s, err := h.load(ctx)
	if err != nil {
		return err
	}
	if s == nil {
		return errors.New("history is off on this device (/history on BOT)")
	}
	if s.Revoked {
		return fmt.Errorf("this device can no longer read your history at %s: it was removed from your device group", trust.Bare(s.Service))
	}
	return h.fetch(ctx, s, true)
}

// newEpoch starts an epoch with a fresh admin secret and MAC key, adds
// this device and the group's devices, and appends it (h.op held).
func (h *archiver) newEpoch(ctx context.Context, s *ownArchive) error {
	if len(s.Epochs) >= maxArchiveEpochs {
		return fmt.Errorf("app: the archive has %d epochs, the most it keeps", len(s.Epochs))
	}
	e := epochState{Members: map[string]crypto.PublicKey{}, Started: h.now()}
	if err := primitive.RandomBytes(nil, e.Group[:]); err != nil {
		return err
	}
	if err := primitive.RandomBytes(nil, e.MAC[:]); err != nil {
		return err
	}
	if n := len(s.Epochs); n > 0 {
		e.Epoch = s.Epochs[n-1].Epoch + 1
	}
	a, A, err := recrypt.NewAdmin(rand.Reader)
	if err != nil {
		return err
	}
	e.Admin, e.A = &a, A
	c := archive.CreateGroup{Group: e.Group, Kind: archive.OwnArchive, Epoch: e.Epoch, A: A}
	archive.SignCreateGroup(&c, h.a.acct.JID, h.a.key)
	b, err := h.request(ctx, s.Service, c)
	if err == nil {
		err = archive.DecodeAnswer(b)
	}
	if err != nil {
		return fmt.Errorf("%w: creating the archive: %w", errHistory, err)
	}
	if err := h.addMember(ctx, s.Service, &e, h.self(), h.a.key.Public()); err != nil {
		return err
	}
	s.Epochs = append(s.Epochs, e)
	clear(s.KeysSent) // every device needs the new epoch
	h.addMembers(ctx, s)
	return nil
}

// addMember registers a device at the service with a fresh split of a,
// its share sealed to its identity key.
func (h *archiver) addMember(ctx context.Context, service string, e *epochState, device string, key crypto.PublicKey) error {
	x, r, err := recrypt.Split(*e.Admin, rand.Reader)
	if err != nil {
		return err
	}
	pub, err := primitive.X25519PublicFromEd25519(key)
	if err != nil {
		return err
	}
	entry, err := recrypt.SealShare(pub, shareContext(e, device), x)
	if err != nil {
		return err
	}
	req := archive.AddMember{Group: e.Group, Seq: e.AdminSeq + 1, Member: device, IK: key, Share: r, Entry: entry}
	archive.SignAddMember(&req, h.a.key)
	b, err := h.request(ctx, service, req)
	if err == nil {
		err = archive.DecodeAnswer(b)
	}
	if err != nil {
		return fmt.Errorf("%w: adding %s: %w", errHistory, device, err)
	}
	e.AdminSeq++
	if e.Members == nil {
		e.Members = map[string]crypto.PublicKey{}
	}
	e.Members[device] = key
	return nil
}

func shareContext(e *epochState, device string) []byte {
	return append(e.context(), device...)
}

// groupDevices are the devices of our group record that are in it and
// whose keys this device has verified, by full JID (without this one).
func (h *archiver) groupDevices(ctx context.Context) map[string]crypto.PublicKey {
	out := map[string]crypto.PublicKey{}
	g, err := h.a.dev.loadGroup(ctx)
	if err != nil {
		return out
	}
	self := h.a.key.Public()
	for _, x := range g.Devices {
		if x.Key == self || x.Status != keysync.Member || x.Resource == "" {
			continue
		}
		if st, err := h.a.trustStateOf(h.a.acct.JID, x.Key); err != nil || st != trust.Authenticated {
			continue
		}
		out[h.a.acct.JID+"/"+x.Resource] = x.Key
	}
	return out
}

// addMembers makes the group's devices members of every epoch this
// device administers, revokes the ones no longer in the group (and
// starts a new epoch, which they cannot read), and hands the keys to
// the devices that lack some (h.op held).
func (h *archiver) addMembers(ctx context.Context, s *ownArchive) {
	devs := h.groupDevices(ctx)
	last := len(s.Epochs) - 1
	if last >= 0 && s.Epochs[last].Admin != nil {
		gone := false
		for i := range s.Epochs {
			e := &s.Epochs[i]
			if e.Admin == nil {
				continue
			}
			for dev, key := range e.Members {
				if dev == h.self() || slices.Contains(e.Revoked, dev) {
					continue
				}
				if k, ok := devs[dev]; ok && k == key {
					continue
				}
				if h.inGroupElsewhere(ctx, key) {
					continue // not verified here (yet): not revoked for that
				}
				req := archive.SetStatus{Group: e.Group, Seq: e.AdminSeq + 1, Member: dev, Status: archive.Revoked}
				archive.SignSetStatus(&req, h.a.key)
				b, err := h.request(ctx, s.Service, req)
				if err == nil {
					err = archive.DecodeAnswer(b)
				}
				if err != nil {
					h.a.log().Warn("history: revoking a device", "device", dev, "err", err)
					continue
				}
				e.AdminSeq++
				e.Revoked = append(e.Revoked, dev)
				gone = gone || i == last
				h.a.q.push(Event{Kind: EventHistory, Text: fmt.Sprintf("%s can no longer fetch history from %s", h.a.dev.deviceName(dev), trust.Bare(s.Service))})
			}
			for dev, key := range devs {
				if k, ok := e.Members[dev]; ok && k == key {
					continue
				}
				if err := h.addMember(ctx, s.Service, e, dev, key); err != nil {
					h.a.log().Warn("history: adding a device", "device", dev, "err", err)
				}
			}
		}
		if gone {
			// A removed device knows this epoch's keys: what is written
			// from now on goes to a new one.
			if err := h.newEpoch(ctx, s); err != nil {
				h.a.log().Warn("history: a new epoch", "err", err)
			} else {
				h.a.q.push(Event{Kind: EventHistory, Text: "history: what your devices write from now on is kept under new keys, which the removed device does not get (what it could read before, it may have kept)"})
			}
			return // newEpoch sent the keys
		}
		if last := s.Epochs[len(s.Epochs)-1]; !last.Started.IsZero() && h.now().Sub(last.Started) >= epochLifetime && len(s.Epochs) < maxArchiveEpochs {
			// Bounds what a device stolen later, with the service, can
			// read of what is written from now on (docs/PROTOCOL.md).
			if err := h.newEpoch(ctx, s); err != nil {
				h.a.log().Warn("history: a new epoch", "err", err)
			} else {
				h.a.log().Info("history: a new epoch after 90 days", "epoch", s.Epochs[len(s.Epochs)-1].Epoch)
			}
			return
		}
	}
	if s.KeysSent == nil {
		s.KeysSent = map[string]int{}
	}
	for dev := range devs {
		if s.KeysSent[dev] >= len(s.Epochs) {
			continue
		}
		if err := h.sendKeys(ctx, s, dev); err != nil {
			h.a.log().Info("history: handing the keys to a device", "device", dev, "err", err)
			continue
		}
		s.KeysSent[dev] = len(s.Epochs)
	}
}

// inGroupElsewhere reports whether key is a device of our group record
// still in it (verified or not).
func (h *archiver) inGroupElsewhere(ctx context.Context, key crypto.PublicKey) bool {
	g, err := h.a.dev.loadGroup(ctx)
	if err != nil {
		return true
	}
	for _, x := range g.Devices {
		if x.Key == key {
			return x.Status == keysync.Member
		}
	}
	return false
}

// sendKeys hands the archive's keys to a device of the group: every
// epoch without its admin secret, with the chain heads this device
// knows.
func (h *archiver) sendKeys(ctx context.Context, s *ownArchive, dev string) error {
	k := archiveKeys{V: 1, Service: s.Service}
	for _, e := range s.Epochs {
		heads := map[string]history.Hash{}
		for w, end := range e.Ends {
			heads[w] = end.Prev
		}
		if e.Index > 0 {
			heads[h.self()] = e.Prev
		}
		k.Epochs = append(k.Epochs, epochState{Group: e.Group, Epoch: e.Epoch, A: e.A, MAC: e.MAC, Heads: heads})
	}
	b, err := json.Marshal(k)
	if err != nil {
		return err
	}
	var buf bytes.Buffer
	buf.WriteString(`<archive xmlns='` + nsArchiveKeys + `'>`)
	buf.WriteString(base64.StdEncoding.EncodeToString(b))
	buf.WriteString(`</archive>`)
	sctx, cancel := context.WithTimeout(ctx, vouchWait)
	defer cancel()
	if h.deliver != nil {
		return h.deliver(sctx, dev, buf.Bytes())
	}
	return h.a.sendToDevice(sctx, dev, buf.Bytes(), false)
}

// onKeys takes the archive's keys another device sent (the device
// loop: handed to the archiver's loop).
func (d *devices) onArchiveKeys(ds *devSession, p []byte) {
	select {
	case d.a.hist.keys <- directKeys{from: ds.fullJID(), key: ds.s.Peer().Identity, p: p}:
		d.a.hist.wake()
	default:
		d.a.log().Info("history: keys dropped (too many at once)", "from", ds.fullJID())
	}
}

// takeKeys applies keys from a device of our group whose key is
// verified here (h.op held); others are ignored.
func (h *archiver) takeKeys(ctx context.Context, k directKeys) {
	if st, err := h.a.trustStateOf(h.a.acct.JID, k.key); err != nil || st != trust.Authenticated || !h.inGroupElsewhere(ctx, k.key) {
		if trust.Bare(k.from) == h.a.acct.JID && len(h.parked) < maxParkedKeys && (k.at.IsZero() || h.now().Sub(k.at) < parkedKeysFor) {
			if k.at.IsZero() {
				k.at = h.now()
				h.a.log().Info("history: keys from an own device not verified here yet: kept until it is", "from", k.from)
			}
			h.parked = append(h.parked, k)
			return
		}
		h.a.log().Info("history: keys from a device not verified or not in the group ignored", "from", k.from)
		return
	}
	in, err := decodeArchiveKeys(k.p)
	if err != nil {
		h.a.log().Info("history: keys refused", "from", k.from, "err", err)
		return
	}
	s, err := h.load(ctx)
	if err != nil {
		h.a.log().Warn("history: reading the archive's state", "err", err)
		return
	}
	fresh := s == nil
	if fresh {
		s = &ownArchive{V: 1, Service: in.Service, Cursor: h.a.lastSeq(ctx), Writing: true}
		if err := primitive.RandomBytes(nil, s.Seed[:]); err != nil {
			return
		}
	}
	if s.Service != in.Service {
		h.a.log().Warn("history: keys for another service ignored", "from", k.from)
		return
	}
	added := 0
	for _, e := range in.Epochs {
		if slices.ContainsFunc(s.Epochs, func(x epochState) bool { return x.Group == e.Group }) {
			// Known already: its heads are not taken (this device may have
			// read past them, and would then take them for a withholding).
			continue
		}
		if len(s.Epochs) >= maxArchiveEpochs {
			break
		}
		s.Epochs = append(s.Epochs, epochState{Group: e.Group, Epoch: e.Epoch, A: e.A, MAC: e.MAC})
		added++
		mine := &s.Epochs[len(s.Epochs)-1]
		for w, hd := range e.Heads {
			if w == h.self() || len(mine.Heads) >= maxArchiveWriters {
				continue
			}
			if mine.Heads == nil {
				mine.Heads = map[string]history.Hash{}
			}
			mine.Heads[w] = hd
		}
	}
	slices.SortStableFunc(s.Epochs, func(x, y epochState) int { return cmp.Compare(x.Epoch, y.Epoch) })
	if err := h.save(ctx, s); err != nil {
		h.a.log().Warn("history: saving the archive's keys", "err", err)
		return
	}
	if fresh {
		h.a.q.push(Event{Kind: EventHistory, Text: fmt.Sprintf("history is kept at %s for your devices (keys from %s): fetching it", trust.Bare(s.Service), h.a.dev.deviceName(k.from))})
	}
	if added > 0 {
		if err := h.fetch(ctx, s, false); err != nil {
			h.a.log().Info("history: fetching", "err", err)
		}
	}
}

// retryParked takes the parked keys whose sender is verified now; the
// others wait, until parkedKeysFor (h.op held).
func (h *archiver) retryParked(ctx context.Context) {
	parked := h.parked
	h.parked = nil
	for _, k := range parked {
		h.takeKeys(ctx, k) // parked again while its sender is unverified
	}
}

// decodeArchiveKeys reads a keys payload: the element, its base64, the
// JSON, each field within bounds.
func decodeArchiveKeys(p []byte) (archiveKeys, error) {
	var k archiveKeys
	if len(p) > maxArchiveKeys*2 {
		return k, errors.New("too long")
	}
	var el struct {
		XMLName xml.Name
		Text    string `xml:",chardata"`
	}
	if err := xml.Unmarshal(p, &el); err != nil || el.XMLName.Space != nsArchiveKeys || el.XMLName.Local != "archive" {
		return k, errors.New("not an archive keys element")
	}
	b, err := base64.StdEncoding.Strict().DecodeString(el.Text)
	if err != nil || len(b) > maxArchiveKeys {
		return k, errors.New("not base64, or too long")
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&k); err != nil || k.V != 1 {
		return k, fmt.Errorf("not version 1 keys: %v", err)
	}
	if _, err := jid.Parse(k.Service); err != nil || len(k.Epochs) == 0 || len(k.Epochs) > maxArchiveEpochs {
		return k, errors.New("service or epochs")
	}
	for _, e := range k.Epochs {
		if e.Admin != nil || len(e.Members) > 0 || len(e.Heads) > maxArchiveWriters || len(e.Ends) > 0 {
			return k, errors.New("an epoch with fields keys do not carry")
		}
		if _, err := recrypt.DecodePoint(e.A); err != nil {
			return k, err
		}
	}
	return k, nil
}

// loop writes and reads the archive in the background until ctx ends.
func (h *archiver) loop(ctx context.Context) {
	t := time.NewTicker(historyEvery)
	defer t.Stop()
	readNow := true
	for {
		select {
		case <-ctx.Done():
			return
		case k := <-h.keys:
			h.op.Lock()
			h.takeKeys(ctx, k)
			h.op.Unlock()
			continue
		case <-h.kick:
		case <-t.C:
		}
		h.op.Lock()
		h.retryParked(ctx)
		s, err := h.load(ctx)
		if err != nil {
			h.a.log().Warn("history: reading the archive's state", "err", err)
		}
		if s != nil && s.Revoked {
			s = nil // removed: nothing to do
		}
		if s != nil {
			h.addMembers(ctx, s)
			// Read again every 10 minutes (what the other devices wrote
			// meanwhile; and a revoked device learns it), every 30 s while
			// the admin device has not added this one yet.
			every := historyReadEvery
			if s.Waiting {
				every = 30 * time.Second
			}
			if time.Since(h.lastRead) >= every {
				readNow = true
			}
			if s.Writing && !s.Waiting { // the service takes pages from members only
				if err := h.write(ctx, s); err != nil && ctx.Err() == nil {
					h.a.log().Info("history: writing", "err", err)
				}
			}
			if err := h.save(ctx, s); err != nil && ctx.Err() == nil {
				h.a.log().Warn("history: saving the archive's state", "err", err)
			}
			if readNow {
				readNow = false
				h.lastRead = time.Now()
				if err := h.fetch(ctx, s, false); err != nil && ctx.Err() == nil {
					h.a.log().Info("history: fetching", "err", err)
				}
			}
		}
		h.op.Unlock()
	}
}

// flush writes what is new before the App closes (bounded by ctx).
func (h *archiver) flush(ctx context.Context) {
	h.op.Lock()
	defer h.op.Unlock()
	s, err := h.load(ctx)
	if err != nil || s == nil || !s.Writing {
		return
	}
	if err := h.write(ctx, s); err != nil {
		h.a.log().Info("history: writing at close", "err", err)
	}
	if err := h.save(ctx, s); err != nil {
		h.a.log().Warn("history: saving the archive's state", "err", err)
	}
}

// write puts this device's new messages to the current epoch, a page
// at a time (h.op held; s saved by the caller).
func (h *archiver) write(ctx context.Context, s *ownArchive) error {
	if len(s.Epochs) == 0 {
		return nil
	}
	for range 100 {
		e := &s.Epochs[len(s.Epochs)-1]
		to := s.PendingTo
		page, to, err := h.buildPage(ctx, s, e, to)
		if err != nil {
			return err
		}
		if to <= s.Cursor {
			return nil // nothing new
		}
		if page == nil {
			s.Cursor = to // entries, but no messages among them
			continue
		}
		// Recorded before the page leaves: after a crash the same
		// entries make the same page, sealed the same way.
		s.PendingTo = to
		if err := h.save(ctx, s); err != nil {
			return err
		}
		plain, err := history.Encode(*page, e.MAC[:])
		if err != nil {
			return err
		}
		id, sealRand := h.pageSecrets(s, e, plain)
		T, sealed, err := recrypt.Seal(e.A, e.context(), plain, id[:], sealRand)
		if err != nil {
			return err
		}
		b, err := h.request(ctx, s.Service, archive.Put{Group: e.Group, Page: id, T: T, Sealed: sealed})
		if err == nil {
			_, err = archive.DecodePutAnswer(b)
		}
		h.reached(s.Service, err)
		if errors.Is(err, archive.ErrRevoked) {
			h.revoked(s)
			return nil
		}
		if err != nil {
			return fmt.Errorf("%w: writing a page: %w", errHistory, err)
		}
		h.a.log().Info("history: page written", "index", e.Index, "records", len(page.Records), "epoch", e.Epoch)
		e.Index++
		e.Prev = history.HashOf(plain)
		s.Cursor, s.PendingTo = to, 0
		if err := h.save(ctx, s); err != nil {
			return err
		}
	}
	return nil
}

// buildPage makes the next page of this device's chain from the
// store's entries after the cursor (up to to, when a page is pending),
// and returns the Seq up to which it covers them; nil when they hold no
// message.
func (h *archiver) buildPage(ctx context.Context, s *ownArchive, e *epochState, to int64) (*history.Page, int64, error) {
	es, err := h.a.st.Since(ctx, h.a.acct.ID, s.Cursor, history.MaxRecords*4)
	if err != nil {
		return nil, 0, err
	}
	page := &history.Page{Writer: h.self(), Index: e.Index, Prev: e.Prev}
	end, size := s.Cursor, 0
	for _, x := range es {
		if to > 0 && x.Seq > to {
			break
		}
		if x.Kind == "message" {
			n := len(x.Room) + len(x.Author) + len(x.AuthorLabel) + len(x.Text) + 64
			if len(page.Records) == history.MaxRecords || size+n > pageBudget {
				if to > 0 {
					return nil, 0, errors.New("app: a pending page no longer fits (the store changed)")
				}
				break
			}
			size += n
			label := x.AuthorLabel
			if x.Own && label == "" {
				label = h.a.cfg.Label // our own lines carry no announced label
			}
			page.Records = append(page.Records, history.Record{Room: x.Room, Author: x.Author, Label: label,
				Time: x.At.Truncate(time.Millisecond).UTC(), ID: x.ID, Body: x.Text})
		}
		end = x.Seq
	}
	if to > 0 {
		end = to
	}
	if len(page.Records) == 0 {
		return nil, end, nil
	}
	return page, end, nil
}

// pageSecrets are a page's id and the randomness that seals it, from
// this device's seed and the page: the same page is sealed the same way
// (retried after a crash, the service stores it once), another page
// never with the same t.
func (h *archiver) pageSecrets(s *ownArchive, e *epochState, plain []byte) (archive.PageID, io.Reader) {
	sum := sha256.Sum256(plain)
	m := hmac.New(sha256.New, s.Seed[:])
	m.Write(e.context())
	m.Write(binary.BigEndian.AppendUint64(nil, e.Index))
	m.Write(sum[:])
	k := m.Sum(nil)
	var id archive.PageID
	copy(id[:], k)
	// t is drawn from 64 bytes; 128 leave room for the (never seen)
	// draw that is refused.
	t, err := primitive.HKDF(k, nil, "mpenc archive t", 128)
	if err != nil {
		panic(err) // HKDF-SHA256 of 128 bytes cannot fail
	}
	return id, bytes.NewReader(t)
}

// fetch reads every epoch from where the last read stopped, records the
// messages this device does not have, and says what it read and what
// was wrong (h.op held; saves s).
func (h *archiver) fetch(ctx context.Context, s *ownArchive, explicit bool) error {
	seed := h.a.key.Seed()
	xk, err := primitive.X25519FromEd25519Seed(seed)
	crypto.Zero(seed[:])
	if err != nil {
		return err
	}
	scalar := xk.Scalar()
	priv, err := ecdh.X25519().NewPrivateKey(scalar[:])
	clear(scalar[:])
	if err != nil {
		return err
	}
	total, shown := 0, 0
	var warnings []string
	var failed error
	waiting := false
	for i := range s.Epochs {
		e := &s.Epochs[i]
		n, added, warns, err := h.fetchEpoch(ctx, s.Service, e, priv)
		h.reached(s.Service, err)
		total += n
		shown += added
		warnings = append(warnings, warns...)
		switch {
		case errors.Is(err, archive.ErrNotFound):
			waiting = true
		case errors.Is(err, archive.ErrRevoked):
			h.revoked(s)
			return h.save(ctx, s)
		case err != nil:
			failed = err
		}
	}
	if waiting && !s.Waiting {
		h.a.q.push(Event{Kind: EventHistory, Text: fmt.Sprintf("history: this device cannot read your history at %s yet: "+
			"the device that turned history on adds it when it is online, and this device reads then by itself", trust.Bare(s.Service))})
	}
	s.Waiting = waiting
	if err := h.save(ctx, s); err != nil {
		return err
	}
	// A read the user asked for always says what it found; one of the
	// loop's only when it found something new or something wrong.
	if explicit && total > 0 || shown > 0 || len(warnings) > 0 || failed != nil {
		text := fmt.Sprintf("history from %s: %d message(s) read, %d new here", trust.Bare(s.Service), total, shown)
		if failed != nil {
			h.a.log().Info("history: a read stopped", "err", failed)
			text += "; the read stopped: " + readFailure(s.Service, failed)
		}
		h.a.q.push(Event{Kind: EventHistory, Text: text, Warning: len(warnings) > 0 || failed != nil})
		// A hostile service can make every page of a read fail: the
		// first problems are shown, the rest counted.
		for _, w := range warnings[:min(len(warnings), maxShownWarnings)] {
			h.a.q.push(Event{Kind: EventHistory, Text: w, Warning: true})
		}
		if n := len(warnings) - maxShownWarnings; n > 0 {
			h.a.q.push(Event{Kind: EventHistory, Text: fmt.Sprintf("… and %d more problem(s) with what %s handed back", n, trust.Bare(s.Service)), Warning: true})
		}
	}
	if explicit && total == 0 && shown == 0 && len(warnings) == 0 && failed == nil {
		h.a.q.push(Event{Kind: EventHistory, Text: fmt.Sprintf("history from %s: nothing new", trust.Bare(s.Service))})
	}
	return nil // a failure is told by the EventHistory above
}

// readFailure words why a read stopped, in our words (the service's
// reasons are its own: in its audit log).
func readFailure(service string, err error) string {
	switch {
	case errors.Is(err, archive.ErrBusy):
		return trust.Bare(service) + " is busy; try again in a minute (/history fetch)"
	case errors.Is(err, archive.ErrRefused):
		return trust.Bare(service) + " refused the request"
	case errors.Is(err, errHistory):
		return trust.Bare(service) + " does not answer"
	}
	return "this device could not open what " + trust.Bare(service) + " sent"
}

// revoked records that the service no longer has this device as a
// member, and says so once (h.op held; s saved by the caller).
func (h *archiver) revoked(s *ownArchive) {
	if s.Revoked {
		return
	}
	s.Revoked, s.Writing = true, false
	h.a.q.push(Event{Kind: EventHistory, Warning: true, Text: fmt.Sprintf("this device can no longer read or write your history at %s: "+
		"its access was revoked (it was removed from your device group)", trust.Bare(s.Service))})
}

// fetchEpoch reads one epoch's new pages: how many records, how many
// were new here, and the reader's warnings.
func (h *archiver) fetchEpoch(ctx context.Context, service string, e *epochState, priv *ecdh.PrivateKey) (int, int, []string, error) {
	r := history.NewReader(e.MAC[:], e.After, e.Ends)
	var x recrypt.Scalar
	haveX := false
	after, last := e.After, e.After
	for range fetchRounds {
		req := archive.Fetch{Group: e.Group, After: after, Max: archive.MaxFetch, Time: time.Now()}
		if err := primitive.RandomBytes(nil, req.Nonce[:]); err != nil {
			return 0, 0, nil, err
		}
		archive.SignFetch(&req, h.self(), h.a.key)
		b, err := h.request(ctx, service, req)
		if err != nil {
			return 0, 0, nil, err
		}
		f, err := archive.DecodeFetchAnswer(b)
		if err != nil {
			return 0, 0, nil, err
		}
		if !haveX {
			if x, err = recrypt.OpenShare(priv, shareContext(e, h.self()), f.Entry); err != nil {
				return 0, 0, nil, fmt.Errorf("app: our entry at the history service does not open: %v", err)
			}
			haveX = true
		}
		last = f.Last
		for _, p := range f.Pages {
			plain, err := recrypt.Open(x, e.A, p.T, p.R, e.context(), p.Sealed, p.ID[:])
			r.Add(p.Seq, plain, err)
			after = max(after, p.Seq)
		}
		if len(f.Pages) == 0 || after >= f.Last {
			break
		}
	}
	res := r.Finish(last, e.Heads)
	var warns []string
	for _, w := range res.Warnings {
		warns = append(warns, w.String())
	}
	for _, w := range res.Reached {
		delete(e.Heads, w) // checked: later reads start past it
	}
	// An entry is new here when the store gives it a place after what
	// it held before this read (one message written by two devices, or
	// read before, is not).
	before := h.a.lastSeq(ctx)
	added := 0
	counted := map[int64]bool{} // one message written by two devices: one line
	for _, rec := range res.Records {
		if rec.Author == "" {
			continue
		}
		ent := Entry{Kind: session.Message, Archived: true, ID: rec.ID, Author: rec.Author, AuthorLabel: rec.Label,
			Text: rec.Body, At: rec.Time}
		room := normRoom(rec.Room)
		st, err := h.a.st.Append(ctx, h.a.acct.ID, room, ent.toStore())
		if err != nil {
			h.a.log().Info("history: an archived message not recorded", "room", room, "err", err)
			continue
		}
		if st.Kind != "archived" || st.Seq <= before || counted[st.Seq] {
			continue // this device has it already
		}
		counted[st.Seq] = true
		got, err := fromStore(st)
		if err != nil {
			continue
		}
		added++
		h.a.q.push(Event{Kind: EventEntry, Room: room, Entry: got})
	}
	e.After = max(e.After, after)
	e.Ends = res.Ends
	return len(res.Records), added, warns, nil
}

// oneLineJID is an address the user typed, as a line shows it.
func oneLineJID(s string) string {
	if j, err := jid.Parse(s); err == nil {
		return j.String()
	}
	return fmt.Sprintf("%.64q", s)
}
