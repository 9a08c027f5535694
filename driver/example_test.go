package driver_test

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"sync"

	"github.com/nodepool-go/nodepool/config"
	"github.com/nodepool-go/nodepool/driver"
)

// memDriver is a driver whose cloud is a map in memory: enough to show the
// contract. A real driver lives in its own package and talks to an API.
type memDriver struct{}

// Registering in init is what makes the driver known to every launcher,
// to LoadConfig and to `nodepool config-validate` in the program: a
// provider entry selects it with `driver: memory`.
func init() { driver.Register("memory", memDriver{}) }

// memSettings are the driver's own provider keys (ProviderConfig.Settings).
type memSettings struct {
	MaxInstances int // max-instances: the "cloud's" quota
}

// ParseProvider reads one providers entry: the common keys through the
// driver package's helpers, its own keys from the same section.
func (memDriver) ParseProvider(s *driver.Section) *driver.ProviderConfig {
	p := driver.ParseProviderCommon(s)
	driver.ParseTimeouts(s, p, 60, 10)
	p.Settings = &memSettings{MaxInstances: s.Int("max-instances", 1)}
	for _, ps := range s.List("pools") {
		pool := driver.ParsePoolCommon(ps)
		for _, ls := range ps.List("labels") {
			pool.Labels = append(pool.Labels, &driver.LabelConfig{
				Name:           ls.RequiredString("name"),
				Username:       ls.String("username", "zuul"),
				ConnectionType: "ssh",
				ConnectionPort: 22,
			})
			ls.Finish() // reports keys nobody read
		}
		p.Pools = append(p.Pools, pool)
		ps.Finish()
	}
	s.Finish()
	return p
}

// Open returns the adapter of one provider.
func (memDriver) Open(ctx context.Context, cfg *driver.ProviderConfig, env driver.Env) (driver.Adapter, error) {
	st, ok := cfg.Settings.(*memSettings)
	if !ok {
		return nil, fmt.Errorf("memory: provider %s has no memory settings", cfg.Name)
	}
	return &memAdapter{max: st.MaxInstances, servers: map[string]driver.Instance{}}, nil
}

// memAdapter is one provider's view of its cloud.
type memAdapter struct {
	max     int
	mu      sync.Mutex
	next    int
	servers map[string]driver.Instance
}

var _ driver.Adapter = (*memAdapter)(nil)

func (a *memAdapter) CreateMachine(spec driver.CreateSpec) driver.CreateMachine {
	return &memCreate{a: a, spec: spec}
}

func (a *memAdapter) DeleteMachine(externalID string) driver.DeleteMachine {
	return &memDelete{a: a, id: externalID}
}

func (a *memAdapter) ListInstances(ctx context.Context) ([]driver.Instance, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	out := make([]driver.Instance, 0, len(a.servers))
	for _, s := range a.servers {
		out = append(out, s)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ExternalID < out[j].ExternalID })
	return out, nil
}

func (a *memAdapter) Close() error { return nil }

// memCreate creates an instance in two steps, as a cloud API would: the
// first Advance asks for the server (its id is known from then on), the
// second finds it running. A launcher that restarts in between finds the
// id in the node record and deletes the half-made instance.
type memCreate struct {
	a    *memAdapter
	spec driver.CreateSpec
	id   string
}

func (m *memCreate) Advance(ctx context.Context) (*driver.Instance, error) {
	a := m.a
	a.mu.Lock()
	defer a.mu.Unlock()
	if m.id == "" {
		if len(a.servers) >= a.max {
			// Typed: the launcher aborts the node without using up a
			// retry and pauses the pool until quota frees up.
			return nil, driver.QuotaError("memory: %d of %d instances in use", len(a.servers), a.max)
		}
		a.next++
		m.id = "mem-" + strconv.Itoa(a.next)
		a.servers[m.id] = driver.Instance{
			ExternalID:  m.id,
			InterfaceIP: "192.0.2." + strconv.Itoa(a.next),
			Metadata:    m.spec.Metadata, // the ownership keys, listed back
		}
		return nil, nil // under way
	}
	inst, ok := a.servers[m.id]
	if !ok {
		return nil, fmt.Errorf("memory: server %s vanished", m.id)
	}
	inst.HostKeys = []string{"ssh-ed25519 AAAAexample"} // known: no key scan
	return &inst, nil
}

func (m *memCreate) ExternalID() string { return m.id }

// memDelete deletes in one step; an unknown id is NotFound, which the
// launcher takes as "already deleted".
type memDelete struct {
	a  *memAdapter
	id string
}

func (m *memDelete) Advance(ctx context.Context) (bool, error) {
	m.a.mu.Lock()
	defer m.a.mu.Unlock()
	if _, ok := m.a.servers[m.id]; !ok {
		return false, driver.NotFoundError("memory: no server %s", m.id)
	}
	delete(m.a.servers, m.id)
	return true, nil
}

// Example_register shows how a registered driver is found: LoadConfig
// looks up the driver named by each provider entry and lets it parse the
// entry; the launcher then opens an adapter per provider and advances
// create and delete machines until they finish.
func Example_register() {
	dir, err := os.MkdirTemp("", "driver-example")
	if err != nil {
		panic(err)
	}
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "nodepool.yaml")
	err = os.WriteFile(path, []byte(`
labels:
  - name: tiny
providers:
  - name: scratch
    driver: memory
    max-instances: 1
    pools:
      - name: main
        max-servers: 5
        labels:
          - name: tiny
`), 0o600)
	if err != nil {
		panic(err)
	}

	cfg, err := config.Load(path, "")
	if err != nil {
		panic(err)
	}
	pc := cfg.Provider("scratch")
	fmt.Println("provider", pc.Name, "uses driver", pc.Driver, "with labels", pc.Pools[0].LabelNames())

	// What the launcher does for the provider and for each node.
	d, _ := driver.Lookup(pc.Driver)
	ctx := context.Background()
	ad, err := d.Open(ctx, pc, driver.Env{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		panic(err)
	}
	defer ad.Close()
	spec := driver.CreateSpec{
		Hostname: "np0000000001",
		Label:    pc.Pools[0].Label("tiny"),
		Pool:     pc.Pools[0],
		Metadata: map[string]string{driver.MetaNodeID: "0000000001", driver.MetaPoolName: "main", driver.MetaProviderName: "scratch"},
	}
	m := ad.CreateMachine(spec)
	for {
		inst, err := m.Advance(ctx)
		if err != nil {
			panic(err)
		}
		if inst != nil {
			fmt.Println("created", inst.ExternalID, "at", inst.InterfaceIP)
			break
		}
		fmt.Println("creating; external id", m.ExternalID())
	}

	// A second node is over the cloud's quota: a typed error.
	_, err = ad.CreateMachine(spec).Advance(ctx)
	fmt.Println("second node:", err, "- quota error:", driver.IsQuota(err))

	list, _ := ad.ListInstances(ctx)
	fmt.Println("listed", len(list), "instance owned by node", list[0].Metadata[driver.MetaNodeID])

	done, err := ad.DeleteMachine("mem-1").Advance(ctx)
	fmt.Println("deleted:", done, err)
	_, err = ad.DeleteMachine("mem-1").Advance(ctx)
	fmt.Println("deleted again: not found:", driver.IsNotFound(err))
	// Output:
	// provider scratch uses driver memory with labels [tiny]
	// creating; external id mem-1
	// created mem-1 at 192.0.2.1
	// second node: memory: 1 of 1 instances in use - quota error: true
	// listed 1 instance owned by node 0000000001
	// deleted: true <nil>
	// deleted again: not found: true
}
