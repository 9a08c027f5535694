// Package simcloud is an in-process simulated cloud: the embedded default
// driver for the quick start, the examples and the tests. Servers boot
// after a configurable time, calls take a configurable latency, and tests
// steer the cloud through the knobs of Cloud (failures, quota, hangs).
// Providers naming the same cloud share it within a process; a state file
// makes a cloud survive a process restart and lets several processes (two
// launchers serving one provider) share it.
//
// A provider entry:
//
//	providers:
//	  - name: sim
//	    driver: simcloud
//	    boot-time: [1, 3]
//	    quota: {instances: 10}
//	    pools:
//	      - name: main
//	        labels:
//	          - name: small-node
package simcloud

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/nodepool-go/nodepool/driver"
	"github.com/nodepool-go/nodepool/quota"
)

func init() { driver.Register("simcloud", simDriver{}) }

type simDriver struct{}

// Driver returns the simcloud driver (also registered as "simcloud").
func Driver() driver.Driver { return simDriver{} }

// Open returns the adapter of a simcloud provider, configuring its cloud.
func (simDriver) Open(ctx context.Context, cfg *driver.ProviderConfig, env driver.Env) (driver.Adapter, error) {
	st, ok := cfg.Settings.(*Settings)
	if cfg.Settings == nil {
		st, ok = DefaultSettings(cfg.Name), true
	}
	if !ok || st == nil {
		return nil, fmt.Errorf("simcloud: provider %s has no simcloud settings", cfg.Name)
	}
	name := st.Cloud
	if name == "" {
		name = cfg.Name
	}
	c := Get(name)
	if err := c.Configure(st.Knobs); err != nil {
		return nil, err
	}
	a := &Adapter{cloud: c, cfg: cfg, settings: st}
	pool := ""
	if len(cfg.Pools) > 0 {
		pool = cfg.Pools[0].Name
	}
	flavor := defaultFlavor
	if len(st.Flavors) > 0 {
		flavor = st.Flavors[0]
	}
	c.seed("leaked:"+cfg.Name, st.LeakedInstances, func(i int) Server {
		id := "leaked-" + strconv.Itoa(i+1)
		return Server{
			Name: "np" + id, Flavor: flavor.Name, Cores: flavor.Cores, RAM: flavor.RAM, Region: st.Region,
			Metadata: map[string]string{driver.MetaNodeID: id, driver.MetaPoolName: pool, driver.MetaProviderName: cfg.Name},
		}
	})
	c.seed("foreign", st.ForeignInstances, func(i int) Server {
		return Server{
			Name: fmt.Sprintf("foreign-%d", i+1), Flavor: flavor.Name, Cores: flavor.Cores, RAM: flavor.RAM, Region: st.Region,
			Metadata: map[string]string{"owner": "someone-else"},
		}
	})
	return a, nil
}

// Adapter is a simcloud provider's view of its cloud.
type Adapter struct {
	cloud    *Cloud
	cfg      *driver.ProviderConfig
	settings *Settings
}

var (
	_ driver.Adapter           = (*Adapter)(nil)
	_ driver.QuotaReporter     = (*Adapter)(nil)
	_ driver.LeakCleaner       = (*Adapter)(nil)
	_ driver.ImageManager      = (*Adapter)(nil)
	_ driver.AZLister          = (*Adapter)(nil)
	_ driver.LabelChecker      = (*Adapter)(nil)
	_ driver.LabelErrorChecker = (*Adapter)(nil)
)

// Cloud returns the adapter's cloud.
func (a *Adapter) Cloud() *Cloud { return a.cloud }

// Close does nothing: the cloud outlives its providers.
func (a *Adapter) Close() error { return nil }

func labelFlavor(l *driver.LabelConfig) Flavor {
	if l != nil {
		if ls, ok := l.Settings.(*LabelSettings); ok && ls != nil {
			return ls.Flavor
		}
		if l.Resources != nil {
			return Flavor{Name: l.Name, Cores: int(l.Resources[quota.Cores]), RAM: int(l.Resources[quota.RAM])}
		}
	}
	return defaultFlavor
}

// CreateMachine returns a machine creating one server.
func (a *Adapter) CreateMachine(spec driver.CreateSpec) driver.CreateMachine {
	return &createMachine{a: a, spec: spec}
}

// DeleteMachine returns a machine deleting one server.
func (a *Adapter) DeleteMachine(externalID string) driver.DeleteMachine {
	return &deleteMachine{a: a, id: externalID}
}

const (
	stStart = iota
	stSubmitted
	stBuilding
	stDone
	stFailed
)

type createMachine struct {
	a    *Adapter
	spec driver.CreateSpec

	mu      sync.Mutex
	state   int
	id      string // server id, once the create call answered
	pending string // server id before the call's latency elapsed
	readyAt time.Time
	err     error
	inst    *driver.Instance
}

func (m *createMachine) ExternalID() string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.id
}

func (m *createMachine) Advance(ctx context.Context) (*driver.Instance, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	c := m.a.cloud
	for {
		switch m.state {
		case stStart:
			l := m.spec.Label
			img, di := m.spec.ImageExternalID, ""
			if l != nil {
				di = l.Diskimage
				if img == "" {
					img = l.CloudImage
				}
			}
			m.pending, m.err = c.create(createRequest{
				name:      m.spec.Hostname,
				flavor:    labelFlavor(l),
				image:     img,
				diskimage: di,
				az:        m.spec.AZ,
				region:    m.a.settings.Region,
				metadata:  m.spec.Metadata,
			})
			c.mu.Lock()
			m.readyAt = c.now().Add(c.knobs.APILatency)
			c.mu.Unlock()
			m.state = stSubmitted
		case stSubmitted:
			if c.Now().Before(m.readyAt) {
				return nil, nil
			}
			m.id = m.pending
			if m.err != nil {
				err := m.err
				if driver.IsTransient(err) && m.id == "" {
					// Nothing was created: the next Advance calls again.
					m.state, m.err = stStart, nil
					return nil, err
				}
				m.state = stFailed
				return nil, err
			}
			m.state = stBuilding
		case stBuilding:
			s, ok := c.poll(m.id)
			if !ok {
				m.state, m.err = stFailed, fmt.Errorf("simcloud: server %s disappeared during creation", m.id)
				return nil, m.err
			}
			switch s.Status {
			case StatusBuild:
				return nil, nil
			case StatusActive:
				m.state = stDone
				m.inst = m.a.instance(&s)
				return m.inst, nil
			default:
				m.state = stFailed
				m.err = driver.WithMetric(fmt.Errorf("simcloud: server %s is in status %s: %s", m.id, s.Status, s.Fault), "error.status")
				return nil, m.err
			}
		case stDone:
			return m.inst, nil
		default:
			return nil, m.err
		}
	}
}

type deleteMachine struct {
	a  *Adapter
	id string

	mu        sync.Mutex
	submitted bool
	readyAt   time.Time
	err       error
}

func (m *deleteMachine) Advance(ctx context.Context) (bool, error) {
	if err := ctx.Err(); err != nil {
		return false, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	c := m.a.cloud
	if !m.submitted {
		m.submitted = true
		m.err = c.deleteServer(m.id)
		c.mu.Lock()
		m.readyAt = c.now().Add(c.knobs.APILatency)
		c.mu.Unlock()
	}
	if c.Now().Before(m.readyAt) {
		return false, nil
	}
	if m.err != nil {
		return false, m.err
	}
	return true, nil
}

// instance converts a server into the driver's view.
func (a *Adapter) instance(s *Server) *driver.Instance {
	r := quota.New(float64(s.Cores), 1, float64(s.RAM), 0, nil)
	inst := &driver.Instance{
		ExternalID:  s.ID,
		InterfaceIP: s.PublicIPv4,
		PublicIPv4:  s.PublicIPv4,
		PublicIPv6:  s.PublicIPv6,
		PrivateIPv4: s.PrivateIPv4,
		Cloud:       a.cloud.name,
		Region:      s.Region,
		AZ:          s.AZ,
		HostID:      s.HostID,
		Metadata:    copyMap(s.Metadata),
		Resources:   &r,
	}
	if s.HostKey != "" {
		inst.HostKeys = []string{s.HostKey}
	}
	if inst.Metadata == nil {
		inst.Metadata = map[string]string{}
	}
	return inst
}

// ListInstances returns every server of the cloud, foreign ones included.
func (a *Adapter) ListInstances(ctx context.Context) ([]driver.Instance, error) {
	c := a.cloud
	if err := c.wait(ctx); err != nil {
		return nil, err
	}
	c.mu.Lock()
	c.counters.Lists++
	err := c.listErr
	c.mu.Unlock()
	if err != nil {
		return nil, err
	}
	servers := c.Instances()
	out := make([]driver.Instance, len(servers))
	for i := range servers {
		out[i] = *a.instance(&servers[i])
	}
	return out, nil
}

// ListResources returns every server and image with its metadata.
func (a *Adapter) ListResources(ctx context.Context) ([]driver.Resource, error) {
	c := a.cloud
	if err := c.wait(ctx); err != nil {
		return nil, err
	}
	c.mu.Lock()
	c.counters.ListResources++
	err := c.listErr
	c.mu.Unlock()
	if err != nil {
		return nil, err
	}
	var out []driver.Resource
	for _, s := range c.Instances() {
		out = append(out, driver.Resource{Type: "instance", ID: s.ID, Metadata: s.Metadata})
	}
	for _, im := range c.Images() {
		if im.Public {
			continue
		}
		out = append(out, driver.Resource{Type: "image", ID: im.ID, Metadata: im.Metadata})
	}
	return out, nil
}

// DeleteResource deletes a server or an image.
func (a *Adapter) DeleteResource(ctx context.Context, r driver.Resource) error {
	if err := a.cloud.wait(ctx); err != nil {
		return err
	}
	switch r.Type {
	case "instance":
		return a.cloud.deleteServer(r.ID)
	case "image":
		return a.cloud.deleteImage(r.ID)
	}
	return fmt.Errorf("simcloud: unknown resource type %q", r.Type)
}

// QuotaLimits returns the cloud's quota; unlimited values are infinite.
func (a *Adapter) QuotaLimits(ctx context.Context) (quota.Resources, error) {
	if err := a.cloud.wait(ctx); err != nil {
		return quota.Resources{}, err
	}
	q := a.cloud.Quota()
	lim := func(v int) float64 {
		if v < 0 {
			return quota.Inf
		}
		return float64(v)
	}
	return quota.New(lim(q.Cores), lim(q.Instances), lim(q.RAM), quota.Inf, nil), nil
}

// QuotaForLabel returns the label's flavor: cores, ram and one instance.
func (a *Adapter) QuotaForLabel(ctx context.Context, label *driver.LabelConfig) (quota.Resources, error) {
	f := labelFlavor(label)
	return quota.New(float64(f.Cores), 1, float64(f.RAM), 0, nil), nil
}

// AvailabilityZones returns the cloud's availability zones.
func (a *Adapter) AvailabilityZones(ctx context.Context) ([]string, error) {
	if err := a.cloud.wait(ctx); err != nil {
		return nil, err
	}
	return a.cloud.AZs(), nil
}

// LabelReady reports whether a cloud-image label's image exists.
func (a *Adapter) LabelReady(ctx context.Context, label *driver.LabelConfig) bool {
	return a.CheckLabel(ctx, label) == nil
}

// CheckLabel returns nil when a cloud-image label's image exists, a
// KindNotFound error when it does not, and the error set with
// SetImageLookupError.
func (a *Adapter) CheckLabel(ctx context.Context, label *driver.LabelConfig) error {
	if label == nil || label.CloudImage == "" {
		return nil
	}
	if err := a.cloud.imageLookupError(); err != nil {
		return err
	}
	if !a.cloud.HasImage(label.CloudImage) {
		return driver.NotFoundError("cloud image %s not found", label.CloudImage)
	}
	return nil
}

// UploadImage stores an image with its metadata. Metadata SHOULD_FAIL=true
// makes it fail.
func (a *Adapter) UploadImage(ctx context.Context, spec driver.UploadSpec) (string, error) {
	if err := a.cloud.wait(ctx); err != nil {
		return "", err
	}
	return a.cloud.upload(spec)
}

// DeleteImage deletes an uploaded image; NotFound when it does not exist.
func (a *Adapter) DeleteImage(ctx context.Context, externalID string) error {
	if err := a.cloud.wait(ctx); err != nil {
		return err
	}
	return a.cloud.deleteImage(externalID)
}
