package main

import (
	"context"
	"fmt"
	"sort"
	"sync"
	"time"

	"github.com/nodepool-go/nodepool/driver"
	"github.com/nodepool-go/nodepool/quota"
)

// hypervisorDriver serves providers that are single hypervisor hosts: a
// node is a VM carved out of the host's cores and memory. The VMs live in
// memory (this is an example), but the driver is otherwise complete:
// creation and deletion through state machines, listing with nodepool's
// ownership metadata, quota reporting, leak cleanup, and a typed quota
// error when a host is full. It uses only the public driver package.
//
// A provider entry:
//
//	providers:
//	  - name: host-a
//	    driver: hypervisor
//	    cores: 8
//	    ram: 16384
//	    boot-time: 0.1
//	    pools:
//	      - name: main
//	        max-servers: 4
//	        labels:
//	          - name: small
//	            cores: 2
//	            ram: 2048
type hypervisorDriver struct {
	mu    sync.Mutex
	hosts map[string]*host // by provider name; they outlive provider restarts
}

var (
	_ driver.Driver        = (*hypervisorDriver)(nil)
	_ driver.Adapter       = (*hostAdapter)(nil)
	_ driver.QuotaReporter = (*hostAdapter)(nil)
	_ driver.LeakCleaner   = (*hostAdapter)(nil)
)

func newHypervisorDriver() *hypervisorDriver {
	return &hypervisorDriver{hosts: map[string]*host{}}
}

// hostSettings is the driver's part of a provider entry.
type hostSettings struct {
	Cores    int
	RAM      int // MiB
	BootTime time.Duration
}

// ParseProvider decodes a hypervisor provider entry.
func (d *hypervisorDriver) ParseProvider(s *driver.Section) *driver.ProviderConfig {
	p := driver.ParseProviderCommon(s)
	driver.ParseTimeouts(s, p, 600, 60)
	st := &hostSettings{
		Cores:    s.Int("cores", 8),
		RAM:      s.Int("ram", 16384),
		BootTime: time.Duration(s.Float("boot-time", 0.1) * float64(time.Second)),
	}
	if st.Cores <= 0 || st.RAM <= 0 {
		s.Errorf("cores", "a host needs cores and ram")
	}
	for _, ps := range s.List("pools") {
		pool := driver.ParsePoolCommon(ps)
		for _, ls := range ps.List("labels") {
			l := &driver.LabelConfig{
				Name:           ls.RequiredString("name"),
				Username:       ls.String("username", "zuul"),
				ConnectionType: "ssh",
				ConnectionPort: 22,
				Resources: map[string]float64{
					quota.Instances: 1,
					quota.Cores:     float64(ls.Int("cores", 1)),
					quota.RAM:       float64(ls.Int("ram", 1024)),
				},
			}
			pool.Labels = append(pool.Labels, l)
			ls.Finish()
		}
		p.Pools = append(p.Pools, pool)
		ps.Finish()
	}
	p.Settings = st
	s.Finish()
	return p
}

// Open returns the adapter of a provider's host, creating the host the
// first time.
func (d *hypervisorDriver) Open(_ context.Context, cfg *driver.ProviderConfig, _ driver.Env) (driver.Adapter, error) {
	st, ok := cfg.Settings.(*hostSettings)
	if !ok {
		return nil, fmt.Errorf("hypervisor: provider %s has no hypervisor settings", cfg.Name)
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	h, ok := d.hosts[cfg.Name]
	if !ok {
		h = &host{name: cfg.Name, vms: map[string]*vm{}}
		d.hosts[cfg.Name] = h
	}
	h.mu.Lock()
	h.cores, h.ram, h.bootTime = st.Cores, st.RAM, st.BootTime
	h.mu.Unlock()
	return &hostAdapter{host: h}, nil
}

// VMs returns how many VMs each host runs, by provider name.
func (d *hypervisorDriver) VMs() map[string]int {
	d.mu.Lock()
	defer d.mu.Unlock()
	out := map[string]int{}
	for name, h := range d.hosts {
		h.mu.Lock()
		out[name] = len(h.vms)
		h.mu.Unlock()
	}
	return out
}

// host is one hypervisor and its VMs.
type host struct {
	name string

	mu       sync.Mutex
	cores    int
	ram      int
	bootTime time.Duration
	vms      map[string]*vm
	seq      int
}

// vm is one virtual machine; it boots until readyAt.
type vm struct {
	id       string
	hostname string
	ip       string
	cores    int
	ram      int
	metadata map[string]string
	readyAt  time.Time
	stopping bool
}

func (v *vm) instance() driver.Instance {
	md := make(map[string]string, len(v.metadata))
	for k, val := range v.metadata {
		md[k] = val
	}
	r := quota.New(float64(v.cores), 1, float64(v.ram), 0, nil)
	return driver.Instance{
		ExternalID:  v.id,
		InterfaceIP: v.ip,
		PrivateIPv4: v.ip,
		Metadata:    md,
		HostKeys:    []string{"ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAI" + v.id},
		Resources:   &r,
	}
}

// free returns the host's unused cores and ram.
func (h *host) free() (cores, ram int) {
	cores, ram = h.cores, h.ram
	for _, v := range h.vms {
		cores -= v.cores
		ram -= v.ram
	}
	return cores, ram
}

// hostAdapter is a provider's view of its host.
type hostAdapter struct{ host *host }

// Close does nothing: the host and its VMs outlive the provider.
func (a *hostAdapter) Close() error { return nil }

// CreateMachine returns a machine that starts one VM.
func (a *hostAdapter) CreateMachine(spec driver.CreateSpec) driver.CreateMachine {
	return &createVM{h: a.host, spec: spec}
}

// DeleteMachine returns a machine that stops and removes one VM.
func (a *hostAdapter) DeleteMachine(externalID string) driver.DeleteMachine {
	return &deleteVM{h: a.host, id: externalID}
}

// ListInstances returns every VM of the host.
func (a *hostAdapter) ListInstances(context.Context) ([]driver.Instance, error) {
	h := a.host
	h.mu.Lock()
	defer h.mu.Unlock()
	out := make([]driver.Instance, 0, len(h.vms))
	for _, v := range h.vms {
		out = append(out, v.instance())
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ExternalID < out[j].ExternalID })
	return out, nil
}

// QuotaLimits returns the host's cores and ram; instances are unlimited.
func (a *hostAdapter) QuotaLimits(context.Context) (quota.Resources, error) {
	h := a.host
	h.mu.Lock()
	defer h.mu.Unlock()
	return quota.New(float64(h.cores), quota.Inf, float64(h.ram), quota.Inf, nil), nil
}

// QuotaForLabel returns the label's VM size.
func (a *hostAdapter) QuotaForLabel(_ context.Context, l *driver.LabelConfig) (quota.Resources, error) {
	return l.Need(), nil
}

// ListResources returns the VMs as resources, for the leak cleanup.
func (a *hostAdapter) ListResources(ctx context.Context) ([]driver.Resource, error) {
	insts, _ := a.ListInstances(ctx)
	out := make([]driver.Resource, 0, len(insts))
	for _, in := range insts {
		out = append(out, driver.Resource{Type: "instance", ID: in.ExternalID, Metadata: in.Metadata})
	}
	return out, nil
}

// DeleteResource removes a leaked VM at once.
func (a *hostAdapter) DeleteResource(_ context.Context, r driver.Resource) error {
	h := a.host
	h.mu.Lock()
	defer h.mu.Unlock()
	if _, ok := h.vms[r.ID]; !ok {
		return driver.NotFoundError("hypervisor %s: no VM %s", h.name, r.ID)
	}
	delete(h.vms, r.ID)
	return nil
}

// createVM claims the host's resources for a VM, then waits for it to boot.
type createVM struct {
	h    *host
	spec driver.CreateSpec

	mu sync.Mutex
	v  *vm
}

// ExternalID returns the VM id once the VM exists.
func (m *createVM) ExternalID() string {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.v == nil {
		return ""
	}
	return m.v.id
}

// Advance claims the resources on the first call (a quota error when the
// host is full) and returns the instance once it has booted.
func (m *createVM) Advance(ctx context.Context) (*driver.Instance, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	h := m.h
	h.mu.Lock()
	defer h.mu.Unlock()
	if m.v == nil {
		need := m.spec.Label.Need()
		cores, ram := int(need.Get(quota.Cores)), int(need.Get(quota.RAM))
		freeCores, freeRAM := h.free()
		if cores > freeCores || ram > freeRAM {
			return nil, driver.QuotaError("hypervisor %s is full: %d cores and %d MiB free, %d and %d needed",
				h.name, freeCores, freeRAM, cores, ram)
		}
		h.seq++
		m.v = &vm{
			id:       fmt.Sprintf("%s-vm-%04d", h.name, h.seq),
			hostname: m.spec.Hostname,
			ip:       fmt.Sprintf("192.0.2.%d", h.seq%250+1),
			cores:    cores,
			ram:      ram,
			metadata: m.spec.Metadata,
			readyAt:  time.Now().Add(h.bootTime),
		}
		h.vms[m.v.id] = m.v
		return nil, nil
	}
	if _, ok := h.vms[m.v.id]; !ok {
		return nil, fmt.Errorf("hypervisor %s: VM %s vanished while booting", h.name, m.v.id)
	}
	if time.Now().Before(m.v.readyAt) {
		return nil, nil
	}
	inst := m.v.instance()
	return &inst, nil
}

// deleteVM stops a VM, then removes it.
type deleteVM struct {
	h  *host
	id string
}

// Advance stops the VM on the first call and removes it on the next; an
// unknown VM is NotFound.
func (m *deleteVM) Advance(ctx context.Context) (bool, error) {
	if err := ctx.Err(); err != nil {
		return false, err
	}
	h := m.h
	h.mu.Lock()
	defer h.mu.Unlock()
	v, ok := h.vms[m.id]
	if !ok {
		return false, driver.NotFoundError("hypervisor %s: no VM %s", h.name, m.id)
	}
	if !v.stopping {
		v.stopping = true
		return false, nil
	}
	delete(h.vms, m.id)
	return true, nil
}
