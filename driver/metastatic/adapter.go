package metastatic

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/nodepool-go/nodepool/driver"
	"github.com/nodepool-go/nodepool/quota"
	"github.com/nodepool-go/nodepool/zkclient"
)

// Services is what the metastatic driver needs from its host, passed as
// driver.Env.Services: the ZooKeeper connection through which it requests,
// locks and releases backing nodes.
type Services interface {
	// ZooKeeper returns the launcher's connection.
	ZooKeeper() *zkclient.Client
}

// ErrNoZooKeeper is returned by Open when driver.Env.Services does not
// offer a ZooKeeper connection.
var ErrNoZooKeeper = errors.New(Name + " driver: the launcher offers no ZooKeeper connection (driver.Env.Services)")

// ErrStandby is returned by machines of an adapter while another launcher
// serves the same metastatic provider: slot allocation lives in one
// process, so one launcher at a time serves a provider and the others take
// over when it goes away.
var ErrStandby = errors.New(Name + " driver: the provider is served by another launcher")

// ServeLockRoot holds one lock per metastatic provider, held by the
// launcher serving it. It is outside upstream's schema; Python launchers
// ignore it.
const ServeLockRoot = "/nodepool/metastatic-locks"

// Timings of the backing-node life cycle.
const (
	// BackingPriority is the priority prefix of backing node requests.
	BackingPriority = "100"
	// LockTimeout bounds the wait for the lock of a fulfilled backing node.
	LockTimeout = 30 * time.Second
	// checkInterval is the least time between two reads of one backing
	// request, however many machines wait for it.
	checkInterval = 100 * time.Millisecond
)

// RequestorID returns the requestor id and lock identifier of a
// metastatic provider.
func RequestorID(provider string) string { return zkclient.RequestorMetastaticPrefix + provider }

// UserData is what a backing node's user_data holds (as a JSON string).
type UserData struct {
	Owner string `json:"owner"` // the requestor id of the provider (RequestorID)
	Label string `json:"label"` // the metastatic label it serves
	Slots int    `json:"slots"` // its number of slots (max-parallel-jobs)
}

// DriverData is what a metastatic node's driver_data holds.
type DriverData struct {
	Metadata    map[string]string `json:"metadata"`     // the ownership metadata of the metastatic node
	BackingNode string            `json:"backing_node"` // id of the backing node it runs on
	Slot        int               `json:"slot"`         // its slot on the backing node
	Node        string            `json:"node"`         // the metastatic node's own id
}

// ParseUserData decodes a backing node's user_data, which upstream stores
// as a JSON string holding a JSON object (a bare object is accepted too).
func ParseUserData(raw json.RawMessage) (UserData, bool) {
	var ud UserData
	if len(raw) == 0 {
		return ud, false
	}
	var s string
	if json.Unmarshal(raw, &s) == nil {
		raw = json.RawMessage(s)
	}
	if err := json.Unmarshal(raw, &ud); err != nil || ud.Owner == "" {
		return UserData{}, false
	}
	return ud, true
}

// Open returns the adapter of a metastatic provider. env.Services must
// implement Services.
func (Driver) Open(_ context.Context, cfg *driver.ProviderConfig, env driver.Env) (driver.Adapter, error) {
	s, ok := env.Services.(Services)
	if !ok || s.ZooKeeper() == nil {
		return nil, ErrNoZooKeeper
	}
	log := env.Logger
	if log == nil {
		log = slog.Default()
	}
	return &Adapter{cfg: cfg, zk: s.ZooKeeper(), log: log, id: RequestorID(cfg.Name), now: time.Now,
		records: map[string][]*record{}}, nil
}

// Adapter carves metastatic nodes out of backing nodes. Its memory is a
// cache of what ZooKeeper holds (backing node records with our user_data
// and persistent lock, metastatic nodes' driver_data, our backing
// requests); it is rebuilt from ZooKeeper whenever the adapter starts
// serving the provider: at first use, and when it takes over from another
// launcher (see ErrStandby).
type Adapter struct {
	cfg *driver.ProviderConfig
	zk  *zkclient.Client
	log *slog.Logger
	id  string
	now func() time.Time

	initMu sync.Mutex
	serve  *zkclient.Lock // the provider's serve lock while we hold it
	inited bool

	mu      sync.Mutex // the allocation lock
	records map[string][]*record
}

var (
	_ driver.Adapter       = (*Adapter)(nil)
	_ driver.QuotaReporter = (*Adapter)(nil)
	_ driver.LeakCleaner   = (*Adapter)(nil)
)

// record is the in-memory view of one backing node (or of the request for
// it while it is being obtained).
type record struct {
	label     string   // metastatic label
	slots     []string // allocated node ids, "" for a free slot
	nodeID    string   // backing node, "" while requested
	requestID string
	failed    bool
	lastUsed  time.Time
	lockSince time.Time // first attempt to lock the fulfilled node
	checkedAt time.Time // last read of the request
}

func newRecord(label string, slots int, now time.Time) *record {
	if slots < 1 {
		slots = 1
	}
	return &record{label: label, slots: make([]string, slots), lastUsed: now}
}

func (r *record) freeSlot() int {
	if r.failed {
		return -1
	}
	for i, s := range r.slots {
		if s == "" {
			return i
		}
	}
	return -1
}

func (r *record) empty() bool {
	for _, s := range r.slots {
		if s != "" {
			return false
		}
	}
	return true
}

// settings returns the metastatic settings of a configured label, or nil.
func (a *Adapter) settings(label string) *LabelSettings {
	for _, p := range a.cfg.Pools {
		if l := p.Label(label); l != nil {
			if s, ok := l.Settings.(*LabelSettings); ok {
				return s
			}
		}
	}
	return nil
}

// labelFor returns the first configured label backed by backingLabel.
func (a *Adapter) labelFor(backingLabel string) string {
	for _, p := range a.cfg.Pools {
		for _, l := range p.Labels {
			if s, ok := l.Settings.(*LabelSettings); ok && s.BackingLabel == backingLabel {
				return l.Name
			}
		}
	}
	return ""
}

// --- recovery ---------------------------------------------------------------

// init makes sure we serve the provider: it takes the provider's serve
// lock (ErrStandby when another launcher holds it) and then rebuilds the
// records from ZooKeeper, plus the backing
// requests left in flight by a previous server of this provider. Losing
// the lock with the session drops the records; the next call recovers.
func (a *Adapter) init(ctx context.Context) error {
	a.initMu.Lock()
	defer a.initMu.Unlock()
	if a.inited && a.serve.Held() {
		return nil
	}
	if a.serve != nil && !a.serve.Held() {
		a.log.Warn("lost the serve lock with the ZooKeeper session; dropping the backing node records")
		_ = a.serve.Release(ctx)
		a.serve = nil
	}
	if a.inited {
		a.inited = false
		a.mu.Lock()
		for _, rs := range a.records {
			for _, r := range rs {
				r.failed = true // waiting machines fail and retry
			}
		}
		a.records = map[string][]*record{}
		a.mu.Unlock()
	}
	if a.serve == nil {
		l := a.zk.NewLock(ServeLockRoot+"/"+a.cfg.Name, zkclient.WithIdentifier(a.id))
		got, err := l.TryAcquire(ctx)
		if err != nil {
			return fmt.Errorf("%s: taking the serve lock: %w", Name, err)
		}
		if !got {
			return ErrStandby
		}
		a.serve = l
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if err := a.recover(ctx); err != nil {
		a.records = map[string][]*record{}
		return fmt.Errorf("%s: recovering backing nodes: %w", Name, err)
	}
	a.inited = true
	return nil
}

func (a *Adapter) recover(ctx context.Context) error {
	nodes, err := a.zk.Nodes(ctx, nil)
	if err != nil {
		return err
	}
	now := a.now()
	byNode := map[string]*record{}
	for _, n := range nodes {
		ud, ok := ParseUserData(n.UserData)
		if !ok || ud.Owner != a.id {
			continue
		}
		contender, err := a.ourContender(ctx, n.ID)
		if err != nil {
			return err
		}
		if contender == "" {
			continue
		}
		if n.State != zkclient.NodeInUse {
			// A release that stopped half-way: finish it.
			a.log.Info("finishing the release of a backing node", "node", n.ID, "state", n.State)
			if err := a.release(ctx, n.ID); err != nil {
				return err
			}
			continue
		}
		r := newRecord(ud.Label, ud.Slots, now)
		r.nodeID = n.ID
		byNode[n.ID] = r
		a.records[ud.Label] = append(a.records[ud.Label], r)
		a.log.Info("recovered backing node", "node", n.ID, "label", ud.Label, "slots", ud.Slots)
	}
	for _, n := range nodes {
		if n.Provider != a.cfg.Name || len(n.DriverData) == 0 {
			continue
		}
		var dd DriverData
		if json.Unmarshal(n.DriverData, &dd) != nil {
			continue
		}
		r := byNode[dd.BackingNode]
		if r == nil || dd.Slot < 0 || dd.Slot >= len(r.slots) || r.slots[dd.Slot] != "" {
			continue
		}
		r.slots[dd.Slot] = n.ID
	}
	reqs, err := a.zk.Requests(ctx, nil)
	if err != nil {
		return err
	}
	for _, req := range reqs {
		if req.Requestor != a.id {
			continue
		}
		taken := req.State == zkclient.RequestFulfilled && len(req.Nodes) > 0 && byNode[req.Nodes[0]] != nil
		if req.State == zkclient.RequestFailed || taken || len(req.NodeTypes) == 0 {
			if err := a.zk.DeleteRequest(ctx, req.ID); err != nil {
				return err
			}
			continue
		}
		label := a.labelFor(req.NodeTypes[0])
		slots := 1
		if s := a.settings(label); s != nil {
			slots = s.MaxParallelJobs
		}
		r := newRecord(label, slots, now)
		r.requestID = req.ID
		a.records[label] = append(a.records[label], r)
		a.log.Info("adopted backing node request", "request", req.ID, "state", req.State, "label", label)
	}
	// A node we locked for a request that has vanished since (deleted by
	// someone else before we wrote our user_data) is ready, allocated to
	// nothing its provider could free while we lock it: unlock it.
	live := map[string]bool{}
	for _, req := range reqs {
		live[req.ID] = true
	}
	for _, n := range nodes {
		if n.State != zkclient.NodeReady || n.AllocatedTo == "" || live[n.AllocatedTo] || byNode[n.ID] != nil {
			continue
		}
		mine, err := a.ourContenders(ctx, n.ID)
		if err != nil {
			return err
		}
		for _, p := range mine {
			if err := a.zk.Delete(ctx, p, -1); err != nil && !errors.Is(err, zkclient.ErrNoNode) {
				return err
			}
		}
		if len(mine) > 0 {
			a.log.Info("unlocked a node whose backing request vanished", "node", n.ID, "request", n.AllocatedTo)
		}
	}
	return nil
}

// ourContender returns the path of the first contender of the node's lock
// when it carries our identifier, else "".
func (a *Adapter) ourContender(ctx context.Context, nodeID string) (string, error) {
	dir := zkclient.NodeLockPath(nodeID)
	children, err := a.zk.Children(ctx, dir)
	if errors.Is(err, zkclient.ErrNoNode) {
		return "", nil
	}
	if err != nil {
		return "", err
	}
	sorted := zkclient.SortContenders(children)
	if len(sorted) == 0 {
		return "", nil
	}
	p := dir + "/" + sorted[0]
	data, _, err := a.zk.Get(ctx, p)
	if errors.Is(err, zkclient.ErrNoNode) {
		return "", nil
	}
	if err != nil {
		return "", err
	}
	if string(data) != a.id {
		return "", nil
	}
	return p, nil
}

// ourContenders returns every contender of the node's lock with our
// identifier.
func (a *Adapter) ourContenders(ctx context.Context, nodeID string) ([]string, error) {
	dir := zkclient.NodeLockPath(nodeID)
	children, err := a.zk.Children(ctx, dir)
	if errors.Is(err, zkclient.ErrNoNode) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var out []string
	for _, ch := range zkclient.SortContenders(children) {
		data, _, err := a.zk.Get(ctx, dir+"/"+ch)
		if errors.Is(err, zkclient.ErrNoNode) {
			continue
		}
		if err != nil {
			return nil, err
		}
		if string(data) == a.id {
			out = append(out, dir+"/"+ch)
		}
	}
	return out, nil
}

// --- allocation ----------------------------------------------------------------

// allocate puts nodeID into the first free slot of the label's records,
// requesting a new backing node when there is none.
func (a *Adapter) allocate(ctx context.Context, label *driver.LabelConfig, nodeID string) (*record, int, error) {
	st, ok := label.Settings.(*LabelSettings)
	if !ok {
		return nil, 0, fmt.Errorf("%s: label %s has no metastatic settings", Name, label.Name)
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, r := range a.records[label.Name] {
		if i := r.freeSlot(); i >= 0 {
			r.slots[i] = nodeID
			return r, i, nil
		}
	}
	now := a.now()
	req := &zkclient.NodeRequest{
		State:       zkclient.RequestRequested,
		StateTime:   float64(now.UnixNano()) / 1e9,
		CreatedTime: float64(now.UnixNano()) / 1e9,
		NodeTypes:   []string{st.BackingLabel},
		Reuse:       true,
		Requestor:   a.id,
	}
	if _, err := a.zk.SubmitRequest(ctx, req, BackingPriority, false); err != nil {
		return nil, 0, fmt.Errorf("%s: requesting a backing node: %w", Name, err)
	}
	a.log.Info("requested backing node", "request", req.ID, "label", label.Name, "backing_label", st.BackingLabel)
	r := newRecord(label.Name, st.MaxParallelJobs, now)
	r.requestID = req.ID
	r.slots[0] = nodeID
	a.records[label.Name] = append(a.records[label.Name], r)
	return r, 0, nil
}

// deallocate frees the slot holding nodeID, if any.
func (a *Adapter) deallocate(nodeID string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, rs := range a.records {
		for _, r := range rs {
			for i, s := range r.slots {
				if s == nodeID {
					r.slots[i] = ""
					r.lastUsed = a.now()
					return
				}
			}
		}
	}
}

// drop removes a record; a.mu is held.
func (a *Adapter) drop(r *record) {
	rs := a.records[r.label]
	for i, x := range rs {
		if x == r {
			a.records[r.label] = append(rs[:i:i], rs[i+1:]...)
			break
		}
	}
	if len(a.records[r.label]) == 0 {
		delete(a.records, r.label)
	}
}

// checkRequests advances every record waiting for its backing node.
func (a *Adapter) checkRequests(ctx context.Context) {
	a.mu.Lock()
	defer a.mu.Unlock()
	var all []*record
	for _, rs := range a.records {
		all = append(all, rs...)
	}
	for _, r := range all {
		a.checkRecord(ctx, r)
	}
}

// checkRecord advances one record waiting for its backing node, reading
// its request at most every checkInterval; a.mu is held.
func (a *Adapter) checkRecord(ctx context.Context, r *record) {
	if r.nodeID != "" || r.failed || r.requestID == "" {
		return
	}
	now := a.now()
	if now.Sub(r.checkedAt) < checkInterval {
		return
	}
	r.checkedAt = now
	if err := a.checkRequest(ctx, r); err != nil {
		a.log.Warn("checking backing node request failed", "request", r.requestID, "error", err)
	}
}

// fail marks a waiting record failed and removes it; a.mu is held.
func (a *Adapter) fail(ctx context.Context, r *record, why string) {
	a.log.Warn("backing node request failed", "request", r.requestID, "label", r.label, "reason", why)
	r.failed = true
	a.drop(r)
	if err := a.zk.DeleteRequest(ctx, r.requestID); err != nil {
		a.log.Warn("deleting failed backing node request failed", "request", r.requestID, "error", err)
	}
}

func (a *Adapter) checkRequest(ctx context.Context, r *record) error {
	req, err := a.zk.GetRequest(ctx, r.requestID)
	if errors.Is(err, zkclient.ErrNoNode) {
		a.fail(ctx, r, "request vanished")
		return nil
	}
	if err != nil {
		return err
	}
	switch req.State {
	case zkclient.RequestFailed:
		a.fail(ctx, r, "request failed")
		return nil
	case zkclient.RequestFulfilled:
	default:
		return nil
	}
	if len(req.Nodes) == 0 {
		a.fail(ctx, r, "fulfilled without nodes")
		return nil
	}
	id := req.Nodes[0]
	contender, err := a.ourContender(ctx, id)
	if err != nil {
		return err
	}
	if contender == "" {
		// Not ours yet (a previous incarnation may have locked it already).
		lock := a.zk.NodeLock(id, zkclient.PersistentContender(), zkclient.WithIdentifier(a.id))
		got, err := lock.TryAcquire(ctx)
		if errors.Is(err, zkclient.ErrNoNode) {
			a.fail(ctx, r, "backing node vanished")
			return nil
		}
		if err != nil {
			return err
		}
		if !got {
			if r.lockSince.IsZero() {
				r.lockSince = a.now()
			} else if a.now().Sub(r.lockSince) > LockTimeout {
				a.fail(ctx, r, "timeout locking backing node "+id)
			}
			return nil
		}
		contender = lock.Node()
		lock.Forget() // the persistent contender is the state from now on
	}
	n, err := a.zk.GetNode(ctx, id)
	if errors.Is(err, zkclient.ErrNoNode) {
		a.fail(ctx, r, "backing node vanished")
		return nil
	}
	if err != nil {
		return err
	}
	ud, _ := json.Marshal(UserData{Owner: a.id, Label: r.label, Slots: len(r.slots)})
	n.UserData, _ = json.Marshal(string(ud))
	n.State = zkclient.NodeInUse
	n.StateTime = float64(a.now().UnixNano()) / 1e9
	if _, err := a.zk.Multi(ctx, zkclient.CheckOp{Path: contender, Version: -1},
		zkclient.SetOp{Path: zkclient.NodePath(id), Data: n.AppendJSON(nil), Version: n.Version}); err != nil {
		return fmt.Errorf("storing backing node %s: %w", id, err)
	}
	if err := a.zk.DeleteRequest(ctx, r.requestID); err != nil {
		a.log.Warn("deleting fulfilled backing node request failed", "request", r.requestID, "error", err)
	}
	r.nodeID = id
	r.lastUsed = a.now()
	a.log.Info("obtained backing node", "node", id, "request", r.requestID, "label", r.label)
	return nil
}

// --- release ---------------------------------------------------------------------

// release returns a backing node to its provider: state used and our
// contenders removed, in one transaction. A node already gone is not an
// error.
func (a *Adapter) release(ctx context.Context, nodeID string) error {
	n, err := a.zk.GetNode(ctx, nodeID)
	if errors.Is(err, zkclient.ErrNoNode) {
		return nil
	}
	if err != nil {
		return err
	}
	mine, err := a.ourContenders(ctx, nodeID)
	if err != nil {
		return err
	}
	n.State = zkclient.NodeUsed
	n.StateTime = float64(a.now().UnixNano()) / 1e9
	ops := []zkclient.Op{zkclient.SetOp{Path: zkclient.NodePath(nodeID), Data: n.AppendJSON(nil), Version: n.Version}}
	for _, p := range mine {
		ops = append(ops, zkclient.DeleteOp{Path: p, Version: -1})
	}
	if _, err := a.zk.Multi(ctx, ops...); err != nil {
		return fmt.Errorf("releasing backing node %s: %w", nodeID, err)
	}
	a.log.Info("released backing node", "node", nodeID)
	return nil
}

// ListResources releases backing nodes idle for longer than their label's
// grace time and forgets lost ones; it lists nothing.
func (a *Adapter) ListResources(ctx context.Context) ([]driver.Resource, error) {
	if err := a.init(ctx); err != nil {
		if errors.Is(err, ErrStandby) {
			return nil, nil
		}
		return nil, err
	}
	a.checkRequests(ctx)
	a.mu.Lock()
	defer a.mu.Unlock()
	var all []*record
	for _, rs := range a.records {
		all = append(all, rs...)
	}
	var errs []error
	for _, r := range all {
		// A slot whose node record is gone (deleted without our delete
		// machine, e.g. by a standby launcher) is free again.
		for i, id := range r.slots {
			if id == "" {
				continue
			}
			ok, _, err := a.zk.Exists(ctx, zkclient.NodePath(id))
			if err == nil && !ok {
				r.slots[i] = ""
				r.lastUsed = a.now()
			}
		}
	}
	now := a.now()
	for _, r := range all {
		if r.nodeID == "" {
			continue
		}
		contender, err := a.ourContender(ctx, r.nodeID)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if contender == "" {
			a.lost(ctx, r)
			continue
		}
		var grace time.Duration
		if s := a.settings(r.label); s != nil {
			grace = s.GraceTime
		}
		if !r.empty() || now.Sub(r.lastUsed) <= grace {
			continue
		}
		if err := a.release(ctx, r.nodeID); err != nil {
			errs = append(errs, err)
			continue
		}
		a.drop(r)
	}
	return nil, errors.Join(errs...)
}

// lost forgets a backing node that vanished or whose lock is no longer
// ours, and sends its unused metastatic nodes to deletion; a.mu is held.
func (a *Adapter) lost(ctx context.Context, r *record) {
	a.log.Warn("backing node lost", "node", r.nodeID, "label", r.label)
	r.failed = true
	a.drop(r)
	for _, id := range r.slots {
		if id == "" {
			continue
		}
		lock := a.zk.NodeLock(id)
		if got, err := lock.TryAcquire(ctx); err != nil || !got {
			continue // in use, or being launched or deleted: its user returns it
		}
		n, err := a.zk.GetNode(ctx, id)
		if err == nil && n.State == zkclient.NodeReady && n.AllocatedTo == "" {
			n.State = zkclient.NodeDeleting
			n.StateTime = float64(a.now().UnixNano()) / 1e9
			if err := a.zk.StoreNode(ctx, n, lock); err != nil {
				a.log.Warn("marking node on a lost backing node deleting failed", "node", id, "error", err)
			}
		}
		_ = lock.Release(ctx)
	}
}

// DeleteResource does nothing: ListResources lists nothing.
func (a *Adapter) DeleteResource(context.Context, driver.Resource) error { return nil }

// ListInstances lists nothing: metastatic nodes are not cloud instances.
func (a *Adapter) ListInstances(ctx context.Context) ([]driver.Instance, error) {
	if err := a.init(ctx); err != nil && !errors.Is(err, ErrStandby) {
		return nil, err
	}
	return nil, nil
}

// QuotaLimits is unlimited; pools' max-servers bound the nodes.
func (a *Adapter) QuotaLimits(context.Context) (quota.Resources, error) {
	return quota.Unlimited(), nil
}

// QuotaForLabel is one instance.
func (a *Adapter) QuotaForLabel(context.Context, *driver.LabelConfig) (quota.Resources, error) {
	return quota.New(0, 1, 0, 0, nil), nil
}

// Close gives up serving the provider; the state lives in ZooKeeper.
func (a *Adapter) Close() error {
	a.initMu.Lock()
	defer a.initMu.Unlock()
	a.inited = false
	if a.serve == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err := a.serve.Release(ctx)
	a.serve = nil
	return err
}

// --- state machines ---------------------------------------------------------------

// CreateMachine allocates a slot for the node.
func (a *Adapter) CreateMachine(spec driver.CreateSpec) driver.CreateMachine {
	return &createMachine{a: a, spec: spec, nodeID: spec.Metadata[driver.MetaNodeID]}
}

// DeleteMachine frees the node's slot.
func (a *Adapter) DeleteMachine(externalID string) driver.DeleteMachine {
	return &deleteMachine{a: a, nodeID: externalID}
}

type createState int

const (
	stateStart createState = iota
	stateRequesting
	stateComplete
)

type createMachine struct {
	a      *Adapter
	spec   driver.CreateSpec
	nodeID string
	state  createState
	rec    *record
	slot   int
}

func (m *createMachine) ExternalID() string { return m.nodeID }

func (m *createMachine) Advance(ctx context.Context) (*driver.Instance, error) {
	a := m.a
	if err := a.init(ctx); err != nil {
		return nil, err
	}
	if m.state == stateStart {
		if m.nodeID == "" {
			return nil, fmt.Errorf("%s: create spec without %s", Name, driver.MetaNodeID)
		}
		r, slot, err := a.allocate(ctx, m.spec.Label, m.nodeID)
		if err != nil {
			return nil, err
		}
		m.rec, m.slot, m.state = r, slot, stateRequesting
	}
	if m.state == stateRequesting {
		a.mu.Lock()
		a.checkRecord(ctx, m.rec)
		failed, have := m.rec.failed, m.rec.nodeID != ""
		a.mu.Unlock()
		if failed {
			return nil, errors.New("backing node failed")
		}
		if !have {
			return nil, nil
		}
		m.state = stateComplete
	}
	a.mu.Lock()
	backingID := m.rec.nodeID
	a.mu.Unlock()
	bn, err := a.zk.GetNode(ctx, backingID)
	if errors.Is(err, zkclient.ErrNoNode) {
		a.mu.Lock()
		a.lost(ctx, m.rec)
		a.mu.Unlock()
		return nil, fmt.Errorf("backing node %s vanished", backingID)
	}
	if err != nil {
		return nil, err
	}
	dd, err := json.Marshal(DriverData{Metadata: m.spec.Metadata, BackingNode: backingID, Slot: m.slot, Node: m.nodeID})
	if err != nil {
		return nil, err
	}
	slot := m.slot
	return &driver.Instance{
		ExternalID:     m.nodeID,
		InterfaceIP:    bn.InterfaceIP,
		PublicIPv4:     bn.PublicIPv4,
		PublicIPv6:     bn.PublicIPv6,
		PrivateIPv4:    bn.PrivateIPv4,
		Cloud:          bn.Cloud,
		Region:         bn.Region,
		AZ:             bn.AZ,
		Metadata:       m.spec.Metadata,
		DriverData:     dd,
		Slot:           &slot,
		Username:       bn.Username,
		PythonPath:     bn.PythonPath,
		ShellType:      bn.ShellType,
		ConnectionType: bn.ConnectionType,
		ConnectionPort: bn.Port(),
		HostKeys:       append([]string(nil), bn.HostKeys...),
	}, nil
}

type deleteMachine struct {
	a      *Adapter
	nodeID string
}

func (m *deleteMachine) Advance(ctx context.Context) (bool, error) {
	if err := m.a.init(ctx); err != nil {
		if errors.Is(err, ErrStandby) {
			// The serving launcher frees the slot once the record is gone.
			return true, nil
		}
		return false, err
	}
	m.a.deallocate(m.nodeID)
	return true, nil
}
