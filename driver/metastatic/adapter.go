package metastatic

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"sync"
	"time"

	"github.com/nodepool-go/nodepool/driver"
	"github.com/nodepool-go/nodepool/internal/pyjson"
	"github.com/nodepool-go/nodepool/zkclient"
)

// Backend is what the launcher must offer (driver.Env.Services) for the
// metastatic driver: the ZooKeeper client through which backing nodes are
// requested, locked and returned.
type Backend interface {
	ZooKeeper() *zkclient.Client
}

// ErrNoBackend is returned by Open when the launcher offers no Backend.
var ErrNoBackend = errors.New(Name + " driver: the launcher offers no ZooKeeper access (driver.Env.Services)")

// backingPriority is the priority prefix of backing-node requests.
const backingPriority = "100"

// lockWait bounds how long a machine keeps trying to lock a backing node
// handed to it.
const lockWait = 30 * time.Second

// Open returns the adapter of a metastatic provider.
func (Driver) Open(_ context.Context, cfg *driver.ProviderConfig, env driver.Env) (driver.Adapter, error) {
	b, ok := env.Services.(Backend)
	if !ok || b.ZooKeeper() == nil {
		return nil, ErrNoBackend
	}
	log := env.Logger
	if log == nil {
		log = slog.Default()
	}
	return &Adapter{cfg: cfg, zk: b.ZooKeeper(), log: log, id: "NodePool:metastatic:" + cfg.Name}, nil
}

// Adapter carves metastatic nodes out of backing nodes. What it knows is
// also in ZooKeeper (the backing node's user_data and our persistent lock
// on it, each metastatic node's driver_data), so a restarted launcher, or
// another one, recovers it.
type Adapter struct {
	cfg *driver.ProviderConfig
	zk  *zkclient.Client
	log *slog.Logger
	id  string // requestor id and lock identifier

	mu        sync.Mutex
	records   []*record
	recovered bool
}

// record is one backing node (or the request for one) and its slots.
type record struct {
	label     string   // metastatic label
	slots     []string // metastatic node id per slot, "" when free
	nodeID    string   // backing node, "" while requested
	requestID string
	lock      *zkclient.Lock // our persistent lock, nil when recovered
	lockNode  string         // path of our contender (recovered records)
	failed    bool
	lastUsed  time.Time
	claiming  bool // a machine is taking the fulfilled request's node
	since     time.Time
}

func (r *record) free() int {
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

// Requestor returns the requestor id of this provider's backing requests.
func (a *Adapter) Requestor() string { return a.id }

func settings(l *driver.LabelConfig) *LabelSettings {
	if s, ok := l.Settings.(*LabelSettings); ok {
		return s
	}
	return &LabelSettings{MaxParallelJobs: 1, GraceTime: DefaultGraceTime}
}

// userData is what the backing node's user_data says (as a JSON string).
type userData struct {
	Owner string `json:"owner"`
	Label string `json:"label"`
	Slots int    `json:"slots"`
}

func encodeUserData(u userData) json.RawMessage {
	o := pyjson.NewObject(nil)
	o.Str("owner", u.Owner)
	o.Str("label", u.Label)
	o.Int("slots", int64(u.Slots))
	return json.RawMessage(pyjson.AppendString(nil, string(o.Bytes())))
}

func decodeUserData(raw json.RawMessage) (userData, bool) {
	var s string
	var u userData
	if len(raw) == 0 || json.Unmarshal(raw, &s) != nil || json.Unmarshal([]byte(s), &u) != nil {
		return u, false
	}
	return u, u.Owner != ""
}

// driverData is what each metastatic node records about its slot.
type driverData struct {
	Metadata    map[string]string `json:"metadata"`
	BackingNode string            `json:"backing_node"`
	Slot        int               `json:"slot"`
	Node        string            `json:"node"`
}

// recover rebuilds the records from ZooKeeper once.
func (a *Adapter) recover(ctx context.Context) error {
	a.mu.Lock()
	done := a.recovered
	a.mu.Unlock()
	if done {
		return nil
	}
	nodes, err := a.zk.Nodes(ctx, nil)
	if err != nil {
		return err
	}
	var recs []*record
	byNode := map[string]*record{}
	for _, n := range nodes {
		u, ok := decodeUserData(n.UserData)
		if !ok || u.Owner != a.id || u.Slots < 1 {
			continue
		}
		dir := zkclient.NodeLockPath(n.ID)
		kids, err := a.zk.Children(ctx, dir)
		if err != nil {
			continue
		}
		var ours string
		for _, k := range zkclient.SortContenders(kids) {
			data, _, err := a.zk.Get(ctx, dir+"/"+k)
			if err == nil && string(data) == a.id {
				ours = dir + "/" + k
			}
			break // only the first contender counts
		}
		if ours == "" {
			continue
		}
		r := &record{label: u.Label, slots: make([]string, u.Slots), nodeID: n.ID, lockNode: ours, lastUsed: time.Now(), since: time.Now()}
		recs = append(recs, r)
		byNode[n.ID] = r
	}
	for _, n := range nodes {
		if n.Provider != a.cfg.Name || len(n.DriverData) == 0 {
			continue
		}
		var dd driverData
		if json.Unmarshal(n.DriverData, &dd) != nil {
			continue
		}
		if r := byNode[dd.BackingNode]; r != nil && dd.Slot >= 0 && dd.Slot < len(r.slots) {
			r.slots[dd.Slot] = n.ID
		}
	}
	// Backing requests a dead launcher left behind: nobody waits on them.
	// Deleting them hands a fulfilled one's node back to its provider as
	// an unallocated ready node (the launcher clears the allocation).
	reqs, err := a.zk.Requests(ctx, nil)
	if err != nil {
		return err
	}
	for _, r := range reqs {
		if r.Requestor == a.id {
			if err := a.zk.DeleteRequest(ctx, r.ID); err != nil {
				return err
			}
			a.log.Info("deleted an abandoned backing-node request", "request", r.ID, "state", string(r.State))
		}
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if !a.recovered {
		a.records = append(a.records, recs...)
		a.recovered = true
		if len(recs) > 0 {
			a.log.Info("recovered backing nodes", "count", len(recs))
		}
	}
	return nil
}

// CreateMachine returns a machine that allocates a slot of a backing node.
func (a *Adapter) CreateMachine(spec driver.CreateSpec) driver.CreateMachine {
	return &createMachine{a: a, spec: spec, id: spec.Metadata[driver.MetaNodeID]}
}

type createMachine struct {
	a    *Adapter
	spec driver.CreateSpec
	id   string // our own node id (the external id)
	rec  *record
	slot int
}

func (m *createMachine) ExternalID() string { return m.id }

func (m *createMachine) Advance(ctx context.Context) (*driver.Instance, error) {
	a := m.a
	if err := a.recover(ctx); err != nil {
		return nil, driver.TransientError("%w", err)
	}
	if m.rec == nil {
		if err := m.allocate(ctx); err != nil {
			return nil, err
		}
	}
	a.mu.Lock()
	r := m.rec
	failed, nodeID := r.failed, r.nodeID
	a.mu.Unlock()
	if failed {
		m.rec = nil
		return nil, errors.New("backing node failed")
	}
	if nodeID == "" {
		return nil, a.pollRequest(ctx, r)
	}
	return m.instance(ctx, nodeID)
}

// allocate takes the first free slot of a record for our label, or makes a
// record with a new backing request.
func (m *createMachine) allocate(ctx context.Context) error {
	a := m.a
	st := settings(m.spec.Label)
	a.mu.Lock()
	for _, r := range a.records {
		if r.label != m.spec.Label.Name || r.failed {
			continue
		}
		if i := r.free(); i >= 0 {
			r.slots[i] = m.id
			m.rec, m.slot = r, i
			a.mu.Unlock()
			return nil
		}
	}
	a.mu.Unlock()
	req := &zkclient.NodeRequest{State: zkclient.RequestRequested, NodeTypes: []string{st.BackingLabel},
		Requestor: a.id, Reuse: true, StateTime: unixNow(), CreatedTime: unixNow()}
	id, err := a.zk.SubmitRequest(ctx, req, backingPriority, false)
	if err != nil {
		return driver.TransientError("requesting a backing node: %w", err)
	}
	r := &record{label: m.spec.Label.Name, slots: make([]string, max(st.MaxParallelJobs, 1)), requestID: id, lastUsed: time.Now(), since: time.Now()}
	r.slots[0] = m.id
	a.mu.Lock()
	a.records = append(a.records, r)
	a.mu.Unlock()
	m.rec, m.slot = r, 0
	a.log.Info("requested a backing node", "label", st.BackingLabel, "request", id)
	return nil
}

// pollRequest advances a record waiting on its backing request.
func (a *Adapter) pollRequest(ctx context.Context, r *record) error {
	a.mu.Lock()
	if r.claiming || r.nodeID != "" {
		a.mu.Unlock()
		return nil
	}
	r.claiming = true
	reqID := r.requestID
	a.mu.Unlock()
	defer func() {
		a.mu.Lock()
		r.claiming = false
		a.mu.Unlock()
	}()
	req, err := a.zk.GetRequest(ctx, reqID)
	if errors.Is(err, zkclient.ErrNoNode) {
		a.fail(r, "backing request vanished")
		return nil
	}
	if err != nil {
		return nil // retried on the next step
	}
	switch req.State {
	case zkclient.RequestFailed:
		_ = a.zk.DeleteRequest(ctx, reqID)
		a.fail(r, "backing request failed")
		return nil
	case zkclient.RequestFulfilled:
	default:
		return nil
	}
	if len(req.Nodes) == 0 {
		_ = a.zk.DeleteRequest(ctx, reqID)
		a.fail(r, "backing request fulfilled without a node")
		return nil
	}
	nodeID := req.Nodes[0]
	lock := a.zk.NodeLock(nodeID, zkclient.WithIdentifier(a.id), zkclient.PersistentContender())
	got, err := lock.TryAcquire(ctx)
	if err != nil || !got {
		if time.Since(r.since) > lockWait+time.Duration(a.cfg.LaunchTimeout)*time.Second {
			_ = a.zk.DeleteRequest(ctx, reqID)
			a.fail(r, "could not lock the backing node")
		}
		return nil
	}
	n, err := a.zk.GetNode(ctx, nodeID)
	if err == nil {
		a.mu.Lock()
		n.UserData = encodeUserData(userData{Owner: a.id, Label: r.label, Slots: len(r.slots)})
		a.mu.Unlock()
		n.State = zkclient.NodeInUse
		n.StateTime = unixNow()
		err = a.zk.StoreNode(ctx, n, lock)
	}
	if err != nil {
		_ = lock.Release(ctx)
		return nil
	}
	if err := a.zk.DeleteRequest(ctx, reqID); err != nil {
		a.log.Warn("deleting a fulfilled backing request failed", "request", reqID, "error", err)
	}
	a.mu.Lock()
	r.nodeID, r.lock, r.lastUsed = nodeID, lock, time.Now()
	a.mu.Unlock()
	a.log.Info("took a backing node", "node", nodeID, "label", r.label, "slots", len(r.slots))
	return nil
}

func (a *Adapter) fail(r *record, why string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	r.failed = true
	for i, rr := range a.records {
		if rr == r {
			a.records = append(a.records[:i], a.records[i+1:]...)
			break
		}
	}
	a.log.Warn("backing node failed", "label", r.label, "request", r.requestID, "reason", why)
}

// instance describes our slot on the backing node.
func (m *createMachine) instance(ctx context.Context, nodeID string) (*driver.Instance, error) {
	b, err := m.a.zk.GetNode(ctx, nodeID)
	if errors.Is(err, zkclient.ErrNoNode) {
		m.a.fail(m.rec, "backing node vanished")
		m.rec = nil
		return nil, errors.New("backing node vanished")
	}
	if err != nil {
		return nil, driver.TransientError("%w", err)
	}
	dd, _ := json.Marshal(driverData{Metadata: m.spec.Metadata, BackingNode: nodeID, Slot: m.slot, Node: m.id})
	slot := m.slot
	inst := &driver.Instance{
		ExternalID: m.id, InterfaceIP: b.InterfaceIP, PublicIPv4: b.PublicIPv4, PublicIPv6: b.PublicIPv6,
		PrivateIPv4: b.PrivateIPv4, AZ: b.AZ, Region: b.Region, Cloud: b.Cloud,
		Username: b.Username, PythonPath: b.PythonPath, ShellType: b.ShellType,
		ConnectionType: b.ConnectionType, ConnectionPort: b.Port(),
		HostKeys: b.HostKeys, DriverData: dd, Slot: &slot, Metadata: m.spec.Metadata,
	}
	return inst, nil
}

// DeleteMachine frees the slot of a metastatic node.
func (a *Adapter) DeleteMachine(externalID string) driver.DeleteMachine {
	return deleteMachine{a: a, id: externalID}
}

type deleteMachine struct {
	a  *Adapter
	id string
}

func (d deleteMachine) Advance(ctx context.Context) (bool, error) {
	if err := d.a.recover(ctx); err != nil {
		return false, driver.TransientError("%w", err)
	}
	d.a.mu.Lock()
	defer d.a.mu.Unlock()
	for _, r := range d.a.records {
		for i, s := range r.slots {
			if s == d.id {
				r.slots[i] = ""
				r.lastUsed = time.Now()
			}
		}
	}
	return true, nil
}

// ListInstances reports nothing: metastatic nodes are not cloud instances.
func (a *Adapter) ListInstances(context.Context) ([]driver.Instance, error) { return nil, nil }

// ListResources returns backing nodes idle past their grace time to their
// provider (drivers.md B4); it reports no leaks.
func (a *Adapter) ListResources(ctx context.Context) ([]driver.Resource, error) {
	if err := a.recover(ctx); err != nil {
		return nil, err
	}
	grace := map[string]time.Duration{}
	for _, p := range a.cfg.Pools {
		for _, l := range p.Labels {
			grace[l.Name] = settings(l).GraceTime
		}
	}
	a.mu.Lock()
	var idle, held []*record
	for _, r := range a.records {
		if r.nodeID == "" {
			continue
		}
		held = append(held, r)
		if r.empty() && time.Since(r.lastUsed) >= grace[r.label] {
			idle = append(idle, r)
		}
	}
	a.mu.Unlock()
	for _, r := range held {
		// A backing node deleted under us (by an operator, or its cloud
		// lost it): forget it, so no new job is placed on it.
		if _, err := a.zk.GetNode(ctx, r.nodeID); errors.Is(err, zkclient.ErrNoNode) {
			a.fail(r, "backing node "+r.nodeID+" vanished")
		}
	}
	for _, r := range idle {
		a.release(ctx, r)
	}
	return nil, nil
}

// release returns an idle backing node: state used, our lock removed.
func (a *Adapter) release(ctx context.Context, r *record) {
	a.mu.Lock()
	if !r.empty() {
		a.mu.Unlock()
		return
	}
	a.mu.Unlock()
	n, err := a.zk.GetNode(ctx, r.nodeID)
	if err == nil {
		n.State = zkclient.NodeUsed
		n.StateTime = unixNow()
		err = a.zk.StoreNode(ctx, n, r.lock)
	}
	if err != nil && !errors.Is(err, zkclient.ErrNoNode) {
		a.log.Warn("returning a backing node failed; will retry", "node", r.nodeID, "error", err)
		return
	}
	if r.lock != nil {
		err = r.lock.Release(ctx)
	} else if r.lockNode != "" {
		err = a.zk.Delete(ctx, r.lockNode, -1)
		if errors.Is(err, zkclient.ErrNoNode) {
			err = nil
		}
	}
	if err != nil {
		a.log.Warn("unlocking a returned backing node failed; will retry", "node", r.nodeID, "error", err)
		return
	}
	a.mu.Lock()
	for i, rr := range a.records {
		if rr == r {
			a.records = append(a.records[:i], a.records[i+1:]...)
			break
		}
	}
	a.mu.Unlock()
	a.log.Info("returned an idle backing node", "node", r.nodeID, "label", r.label)
}

// DeleteResource is never called: ListResources reports nothing.
func (a *Adapter) DeleteResource(context.Context, driver.Resource) error { return nil }

// BackingNodes returns the ids of the backing nodes this adapter holds.
func (a *Adapter) BackingNodes() []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	var out []string
	for _, r := range a.records {
		if r.nodeID != "" {
			out = append(out, r.nodeID)
		}
	}
	return out
}

// Close keeps the backing nodes: they stay locked (persistently) for the
// next launcher to recover.
func (a *Adapter) Close() error { return nil }

func unixNow() float64 { return float64(time.Now().UnixNano()) / 1e9 }
