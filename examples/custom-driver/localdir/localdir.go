// Package localdir is a complete small nodepool driver written only against
// the public driver package: each instance is a directory on the local
// disk, holding an instance.json with the node's ownership metadata. It
// is the worked example of docs/writing-a-driver.md: registration by
// name, its own provider keys, resumable create and delete machines, a
// typed quota error, quota reporting and leak cleanup.
//
// A provider entry:
//
//	providers:
//	  - name: local
//	    driver: localdir
//	    base-dir: /var/lib/nodepool-localdir
//	    max-instances: 4      # the "cloud's" limit; 0 is unlimited
//	    boot-time: 0.2        # seconds an instance takes to become ready
//	    pools:
//	      - name: main
//	        labels:
//	          - name: dir
//	            username: zuul
//
// The state lives on disk only, so a restarted launcher finds its
// instances again, and two launchers with the same base-dir share them.
package localdir

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/nodepool-go/nodepool/driver"
	"github.com/nodepool-go/nodepool/quota"
)

// Name is the driver key provider entries use.
const Name = "localdir"

func init() { driver.Register(Name, Driver{}) }

// Driver parses localdir provider entries and opens their adapters.
type Driver struct{}

var (
	_ driver.Driver        = Driver{}
	_ driver.Adapter       = (*Adapter)(nil)
	_ driver.QuotaReporter = (*Adapter)(nil)
	_ driver.LeakCleaner   = (*Adapter)(nil)
)

// Settings are the driver's own keys of a provider entry.
type Settings struct {
	BaseDir      string        // where instance directories live
	MaxInstances int           // the directory's capacity; 0 is unlimited
	BootTime     time.Duration // how long an instance takes to become ready
}

// ParseProvider decodes a localdir provider entry, recording every
// problem on the section.
func (Driver) ParseProvider(s *driver.Section) *driver.ProviderConfig {
	p := driver.ParseProviderCommon(s)
	driver.ParseTimeouts(s, p, 60, 60)
	st := &Settings{
		BaseDir:      s.RequiredString("base-dir"),
		MaxInstances: s.Int("max-instances", 0),
		BootTime:     time.Duration(s.Float("boot-time", 0) * float64(time.Second)),
	}
	if st.BaseDir != "" && !filepath.IsAbs(st.BaseDir) {
		s.Errorf("base-dir", "expected an absolute path, got %q", st.BaseDir)
	}
	if st.MaxInstances < 0 {
		s.Errorf("max-instances", "expected 0 (unlimited) or more, got %d", st.MaxInstances)
	}
	for _, ps := range s.List("pools") {
		pool := driver.ParsePoolCommon(ps)
		for _, ls := range ps.List("labels") {
			pool.Labels = append(pool.Labels, &driver.LabelConfig{
				Name:           ls.RequiredString("name"),
				Username:       ls.String("username", "zuul"),
				ConnectionType: "ssh",
				ConnectionPort: 22,
			})
			ls.Finish()
		}
		p.Pools = append(p.Pools, pool)
		ps.Finish()
	}
	p.Settings = st
	s.Finish()
	return p
}

// Open returns the adapter of a provider, creating its base directory.
func (Driver) Open(_ context.Context, cfg *driver.ProviderConfig, _ driver.Env) (driver.Adapter, error) {
	st, ok := cfg.Settings.(*Settings)
	if !ok {
		return nil, fmt.Errorf("localdir: provider %s has no localdir settings", cfg.Name)
	}
	if err := os.MkdirAll(st.BaseDir, 0o755); err != nil {
		return nil, fmt.Errorf("localdir: provider %s: %w", cfg.Name, err)
	}
	return &Adapter{provider: cfg.Name, settings: *st}, nil
}

// record is what instance.json holds.
type record struct {
	ID       string            `json:"id"`
	Hostname string            `json:"hostname"`
	Provider string            `json:"provider"`
	ReadyAt  time.Time         `json:"ready_at"`
	Metadata map[string]string `json:"metadata"`
}

const (
	recordFile     = "instance.json"
	deletingPrefix = ".deleting-"
)

// Adapter manages the instance directories of one provider.
type Adapter struct {
	provider string
	settings Settings

	mu sync.Mutex // serialises the capacity check with the mkdir
}

// Close releases nothing: the directories are the state.
func (a *Adapter) Close() error { return nil }

// Dir returns the directory of instance id.
func (a *Adapter) Dir(id string) string { return filepath.Join(a.settings.BaseDir, id) }

// records reads every live instance of the base directory (all
// providers'), skipping directories being deleted or without a record.
func (a *Adapter) records() ([]record, error) {
	entries, err := os.ReadDir(a.settings.BaseDir)
	if err != nil {
		return nil, driver.TransientError("localdir: listing %s: %v", a.settings.BaseDir, err)
	}
	var out []record
	for _, e := range entries {
		if !e.IsDir() || strings.HasPrefix(e.Name(), deletingPrefix) {
			continue
		}
		data, err := os.ReadFile(filepath.Join(a.settings.BaseDir, e.Name(), recordFile))
		if err != nil {
			continue // being created, or not ours
		}
		var r record
		if json.Unmarshal(data, &r) != nil || r.ID != e.Name() {
			continue
		}
		out = append(out, r)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out, nil
}

func (r record) instance() driver.Instance {
	md := make(map[string]string, len(r.Metadata))
	for k, v := range r.Metadata {
		md[k] = v
	}
	return driver.Instance{
		ExternalID:  r.ID,
		InterfaceIP: "127.0.0.1",
		PrivateIPv4: "127.0.0.1",
		Metadata:    md,
		// Known keys spare the launcher a key scan of a host that has no
		// SSH server; a real driver reports the cloud's or lets it scan.
		HostKeys: []string{"ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIlocaldir" + strings.ReplaceAll(r.ID, "-", "")},
	}
}

// ListInstances returns every instance directory under the base directory.
func (a *Adapter) ListInstances(context.Context) ([]driver.Instance, error) {
	recs, err := a.records()
	if err != nil {
		return nil, err
	}
	out := make([]driver.Instance, 0, len(recs))
	for _, r := range recs {
		out = append(out, r.instance())
	}
	return out, nil
}

// QuotaLimits reports max-instances as the instance limit.
func (a *Adapter) QuotaLimits(context.Context) (quota.Resources, error) {
	if a.settings.MaxInstances == 0 {
		return quota.Unlimited(), nil
	}
	return quota.New(quota.Inf, float64(a.settings.MaxInstances), quota.Inf, quota.Inf, nil), nil
}

// QuotaForLabel reports one instance per node.
func (a *Adapter) QuotaForLabel(context.Context, *driver.LabelConfig) (quota.Resources, error) {
	return quota.New(0, 1, 0, 0, nil), nil
}

// ListResources lists the instance directories for the leak cleanup.
func (a *Adapter) ListResources(ctx context.Context) ([]driver.Resource, error) {
	insts, err := a.ListInstances(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]driver.Resource, 0, len(insts))
	for _, in := range insts {
		out = append(out, driver.Resource{Type: "instance", ID: in.ExternalID, Metadata: in.Metadata})
	}
	return out, nil
}

// DeleteResource removes a leaked instance directory.
func (a *Adapter) DeleteResource(ctx context.Context, r driver.Resource) error {
	return driver.RunDelete(ctx, a.DeleteMachine(r.ID), 0)
}

// CreateMachine returns a machine that makes one instance directory.
func (a *Adapter) CreateMachine(spec driver.CreateSpec) driver.CreateMachine {
	return &createMachine{a: a, spec: spec}
}

// DeleteMachine returns a machine that removes one instance directory.
func (a *Adapter) DeleteMachine(externalID string) driver.DeleteMachine {
	return &deleteMachine{a: a, id: externalID}
}

// createMachine makes the directory and its record on the first step,
// then waits out the boot time.
type createMachine struct {
	a    *Adapter
	spec driver.CreateSpec

	mu  sync.Mutex
	rec *record
}

// ExternalID returns the instance id once the directory exists.
func (m *createMachine) ExternalID() string {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.rec == nil {
		return ""
	}
	return m.rec.ID
}

// Advance creates the instance on the first call (a quota error when the
// base directory is at max-instances) and returns it once booted.
func (m *createMachine) Advance(ctx context.Context) (*driver.Instance, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.rec == nil {
		rec, err := m.a.create(m.spec)
		if err != nil {
			return nil, err
		}
		m.rec = rec
	}
	if _, err := os.Stat(filepath.Join(m.a.Dir(m.rec.ID), recordFile)); err != nil {
		return nil, fmt.Errorf("localdir: instance %s vanished while booting", m.rec.ID)
	}
	if time.Now().Before(m.rec.ReadyAt) {
		return nil, nil
	}
	inst := m.rec.instance()
	return &inst, nil
}

// create makes an instance directory: the record is written to a
// temporary file and renamed into place, so a listing never sees half of
// it.
func (a *Adapter) create(spec driver.CreateSpec) (*record, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.settings.MaxInstances > 0 {
		recs, err := a.records()
		if err != nil {
			return nil, err
		}
		if len(recs) >= a.settings.MaxInstances {
			return nil, driver.QuotaError("localdir %s: %d of %d instances in use", a.settings.BaseDir, len(recs), a.settings.MaxInstances)
		}
	}
	rec := &record{
		ID:       "inst-" + uuid.NewString()[:13],
		Hostname: spec.Hostname,
		Provider: a.provider,
		ReadyAt:  time.Now().Add(a.settings.BootTime),
		Metadata: spec.Metadata,
	}
	dir := a.Dir(rec.ID)
	if err := os.Mkdir(dir, 0o755); err != nil {
		return nil, fmt.Errorf("localdir: %w", err)
	}
	data, err := json.MarshalIndent(rec, "", "  ")
	if err == nil {
		tmp := filepath.Join(dir, recordFile+".tmp")
		if err = os.WriteFile(tmp, data, 0o644); err == nil {
			err = os.Rename(tmp, filepath.Join(dir, recordFile))
		}
	}
	if err != nil {
		_ = os.RemoveAll(dir)
		return nil, fmt.Errorf("localdir: writing %s: %w", dir, err)
	}
	return rec, nil
}

// deleteMachine renames the directory out of the listing, then removes it.
type deleteMachine struct {
	a  *Adapter
	id string

	mu      sync.Mutex
	renamed bool
}

// Advance hides the instance on the first call and removes its files on
// the next; an unknown id is NotFound.
func (m *deleteMachine) Advance(ctx context.Context) (bool, error) {
	if err := ctx.Err(); err != nil {
		return false, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	hidden := filepath.Join(m.a.settings.BaseDir, deletingPrefix+m.id)
	if !m.renamed {
		if m.id == "" || strings.ContainsAny(m.id, `/\`) {
			return false, driver.NotFoundError("localdir: no instance %q", m.id)
		}
		err := os.Rename(m.a.Dir(m.id), hidden)
		switch {
		case errors.Is(err, fs.ErrNotExist):
			if _, serr := os.Stat(hidden); serr != nil {
				return false, driver.NotFoundError("localdir: no instance %s", m.id)
			}
			// An earlier machine hid it and stopped: finish its work.
		case err != nil:
			return false, fmt.Errorf("localdir: deleting %s: %w", m.id, err)
		}
		m.renamed = true
		return false, nil
	}
	if err := os.RemoveAll(hidden); err != nil {
		return false, fmt.Errorf("localdir: deleting %s: %w", m.id, err)
	}
	return true, nil
}
