package metastatic

import (
	"context"
	"encoding/json"
	"errors"
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
