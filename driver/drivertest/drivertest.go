// Package drivertest is the conformance suite every driver runs: create →
// ready → listed with the ownership metadata → delete is idempotent → a
// leaked resource is found and removed → quota errors are typed, plus the
// optional interfaces a driver implements.
//
//	func TestConformance(t *testing.T) {
//		drivertest.Run(t, drivertest.Harness{Open: openMyProvider})
//	}
//
// Drivers whose nodes are hosts that already exist (their adapter is a
// driver.Registrar, as the static driver's) run RunRegistrar instead,
// which checks slots, host checks and the refusal to create.
package drivertest

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/nodepool-go/nodepool/driver"
)

// Harness tells the suite how to reach a driver's cloud.
type Harness struct {
	// Open returns a fresh adapter and its provider config. Each subtest
	// opens its own; the harness registers any cleanup with t.Cleanup.
	Open func(t *testing.T) (driver.Adapter, *driver.ProviderConfig)
	// Pool and Label name what to launch; default the first pool and its
	// first label.
	Pool  string
	Label string // see Pool
	// ImageExternalID is passed to create machines (diskimage labels).
	ImageExternalID string
	// AZ is the availability zone to request ("" for none).
	AZ string
	// ProvokeQuota, when set, makes the next create fail for quota.
	ProvokeQuota func(t *testing.T)
	// InjectLeak, when set, creates a resource carrying the metadata
	// without a node and returns its id; else the suite creates an
	// instance through a create machine and treats it as the leak.
	InjectLeak func(t *testing.T, metadata map[string]string) string
	// SkipImages skips the ImageManager test.
	SkipImages bool
	// Timeout bounds one create or delete; default 30 s.
	Timeout time.Duration
	// Tick is the pause between two Advance calls; default 5 ms.
	Tick time.Duration
	// Concurrency is the number of parallel creates of the concurrency
	// test; default 5, negative skips it.
	Concurrency int
	// Unlisted declares a driver whose ListInstances and ListResources list
	// nothing by design (metastatic): creates and deletes are checked
	// without listing, and the Leak test does not apply.
	Unlisted bool
}

// Run runs the suite.
func Run(t *testing.T, h Harness) {
	t.Helper()
	require.NotNil(t, h.Open, "drivertest: Harness.Open is required")
	if h.Timeout == 0 {
		h.Timeout = 30 * time.Second
	}
	if h.Tick == 0 {
		h.Tick = 5 * time.Millisecond
	}
	if h.Concurrency == 0 {
		h.Concurrency = 5
	}
	s := &suite{h: h}
	t.Run("CreateListDelete", s.createListDelete)
	t.Run("DeleteUnknown", s.deleteUnknown)
	t.Run("Concurrent", s.concurrent)
	t.Run("Leak", s.leak)
	t.Run("Quota", s.quota)
	t.Run("QuotaReporter", s.quotaReporter)
	t.Run("AZLister", s.azLister)
	t.Run("LabelChecker", s.labelChecker)
	t.Run("ImageManager", s.imageManager)
}

type suite struct{ h Harness }

type target struct {
	ad   driver.Adapter
	cfg  *driver.ProviderConfig
	pool *driver.PoolConfig
	lbl  *driver.LabelConfig
}

func (s *suite) open(t *testing.T) *target {
	t.Helper()
	ad, cfg := s.h.Open(t)
	require.NotNil(t, ad)
	require.NotNil(t, cfg)
	require.NotEmpty(t, cfg.Pools, "provider has no pools")
	pool := cfg.Pools[0]
	if s.h.Pool != "" {
		pool = cfg.Pool(s.h.Pool)
		require.NotNil(t, pool, "pool %q not found", s.h.Pool)
	}
	require.NotEmpty(t, pool.Labels, "pool %s has no labels", pool.Name)
	lbl := pool.Labels[0]
	if s.h.Label != "" {
		lbl = pool.Label(s.h.Label)
		require.NotNil(t, lbl, "label %q not found", s.h.Label)
	}
	return &target{ad: ad, cfg: cfg, pool: pool, lbl: lbl}
}

// spec returns a create spec with fresh ownership metadata.
func (s *suite) spec(tg *target) driver.CreateSpec {
	id := fmt.Sprintf("%010d", rand.IntN(1_000_000_000)+9_000_000_000)
	return driver.CreateSpec{
		Hostname:        "np" + id,
		Label:           tg.lbl,
		Pool:            tg.pool,
		ImageExternalID: s.h.ImageExternalID,
		AZ:              s.h.AZ,
		Metadata: map[string]string{
			driver.MetaNodeID:       id,
			driver.MetaPoolName:     tg.pool.Name,
			driver.MetaProviderName: tg.cfg.Name,
		},
		Request: driver.RequestInfo{ID: "200-0000000001", Labels: []string{tg.lbl.Name}, Requestor: "drivertest"},
	}
}

func (s *suite) ctx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), s.h.Timeout)
	t.Cleanup(cancel)
	return ctx
}

// AdvanceCreate advances a create machine until it returns an instance or
// an error, or until timeout.
func AdvanceCreate(ctx context.Context, m driver.CreateMachine, tick, timeout time.Duration) (*driver.Instance, error) {
	deadline := time.Now().Add(timeout)
	for {
		inst, err := m.Advance(ctx)
		if err != nil || inst != nil {
			return inst, err
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("drivertest: create machine not complete after %v (external id %q)", timeout, m.ExternalID())
		}
		time.Sleep(tick)
	}
}

// AdvanceDelete advances a delete machine until it is done or fails, or
// until timeout.
func AdvanceDelete(ctx context.Context, m driver.DeleteMachine, tick, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		done, err := m.Advance(ctx)
		if err != nil {
			return err
		}
		if done {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("drivertest: delete machine not done after %v", timeout)
		}
		time.Sleep(tick)
	}
}

// create launches one instance and checks the machine's reports.
func (s *suite) create(t *testing.T, tg *target, spec driver.CreateSpec) *driver.Instance {
	t.Helper()
	m := tg.ad.CreateMachine(spec)
	require.NotNil(t, m)
	inst, err := AdvanceCreate(s.ctx(t), m, s.h.Tick, s.h.Timeout)
	if id := m.ExternalID(); err != nil && id != "" {
		s.deleteQuietly(tg, id)
	}
	require.NoError(t, err)
	require.NotNil(t, inst)
	require.NotEmpty(t, inst.ExternalID, "instance without external id")
	require.Equal(t, inst.ExternalID, m.ExternalID(), "machine's ExternalID differs from the instance's")
	for k, v := range spec.Metadata {
		require.Equal(t, v, inst.Metadata[k], "instance metadata %s", k)
	}
	return inst
}

func (s *suite) deleteQuietly(tg *target, id string) {
	ctx, cancel := context.WithTimeout(context.Background(), s.h.Timeout)
	defer cancel()
	_ = AdvanceDelete(ctx, tg.ad.DeleteMachine(id), s.h.Tick, s.h.Timeout)
}

func (s *suite) remove(t *testing.T, tg *target, id string) {
	t.Helper()
	err := AdvanceDelete(s.ctx(t), tg.ad.DeleteMachine(id), s.h.Tick, s.h.Timeout)
	require.NoError(t, err, "deleting %s", id)
}

func findInstance(list []driver.Instance, id string) *driver.Instance {
	for i := range list {
		if list[i].ExternalID == id {
			return &list[i]
		}
	}
	return nil
}

// waitListed polls ListInstances until the id is (or is not) listed.
func (s *suite) waitListed(t *testing.T, tg *target, id string, want bool) *driver.Instance {
	t.Helper()
	deadline := time.Now().Add(s.h.Timeout)
	for {
		list, err := tg.ad.ListInstances(s.ctx(t))
		require.NoError(t, err)
		got := findInstance(list, id)
		if (got != nil) == want {
			return got
		}
		if time.Now().After(deadline) {
			require.Failf(t, "ListInstances", "instance %s listed=%v, want %v", id, got != nil, want)
		}
		time.Sleep(s.h.Tick)
	}
}

func (s *suite) createListDelete(t *testing.T) {
	tg := s.open(t)
	spec := s.spec(tg)
	inst := s.create(t, tg, spec)
	require.NotEmpty(t, inst.InterfaceIP, "instance without interface ip")

	if !s.h.Unlisted {
		listed := s.waitListed(t, tg, inst.ExternalID, true)
		for k, v := range spec.Metadata {
			require.Equal(t, v, listed.Metadata[k], "listed metadata %s", k)
		}
	}

	s.remove(t, tg, inst.ExternalID)
	if !s.h.Unlisted {
		s.waitListed(t, tg, inst.ExternalID, false)
	}

	// A second delete of the same id completes or reports NotFound.
	err := AdvanceDelete(s.ctx(t), tg.ad.DeleteMachine(inst.ExternalID), s.h.Tick, s.h.Timeout)
	if err != nil {
		require.True(t, driver.IsNotFound(err), "second delete: want nil or NotFound, got %v", err)
	}
}

func (s *suite) deleteUnknown(t *testing.T) {
	tg := s.open(t)
	err := AdvanceDelete(s.ctx(t), tg.ad.DeleteMachine("drivertest-no-such-instance"), s.h.Tick, s.h.Timeout)
	if err != nil {
		require.True(t, driver.IsNotFound(err), "delete of an unknown id: want nil or NotFound, got %v", err)
	}
}

func (s *suite) concurrent(t *testing.T) {
	if s.h.Concurrency < 0 {
		t.Log("not applicable: " + "disabled by the harness")
		return
	}
	tg := s.open(t)
	n := s.h.Concurrency
	ids := make([]string, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			m := tg.ad.CreateMachine(s.spec(tg))
			inst, err := AdvanceCreate(s.ctx(t), m, s.h.Tick, s.h.Timeout)
			ids[i], errs[i] = m.ExternalID(), err
			if err == nil && inst.ExternalID != ids[i] {
				errs[i] = fmt.Errorf("instance id %s, machine id %s", inst.ExternalID, ids[i])
			}
		}()
	}
	wg.Wait()
	seen := map[string]bool{}
	for i := range ids {
		require.NoError(t, errs[i])
		require.False(t, seen[ids[i]], "duplicate external id %s", ids[i])
		seen[ids[i]] = true
	}
	for _, id := range ids {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := AdvanceDelete(s.ctx(t), tg.ad.DeleteMachine(id), s.h.Tick, s.h.Timeout); err != nil {
				t.Errorf("delete %s: %v", id, err)
			}
		}()
	}
	wg.Wait()
}

func (s *suite) leak(t *testing.T) {
	if s.h.Unlisted {
		t.Log("not applicable: " + "the driver lists no resources (Harness.Unlisted)")
		return
	}
	tg := s.open(t)
	lc, ok := tg.ad.(driver.LeakCleaner)
	if !ok {
		t.Log("not applicable: " + "adapter is no LeakCleaner")
		return
	}
	spec := s.spec(tg)
	var id string
	if s.h.InjectLeak != nil {
		id = s.h.InjectLeak(t, spec.Metadata)
	} else {
		id = s.create(t, tg, spec).ExternalID
	}
	require.NotEmpty(t, id)

	find := func() *driver.Resource {
		list, err := lc.ListResources(s.ctx(t))
		require.NoError(t, err)
		for i := range list {
			if list[i].ID == id {
				return &list[i]
			}
		}
		return nil
	}
	r := find()
	require.NotNil(t, r, "leaked resource %s not listed by ListResources", id)
	require.NotEmpty(t, r.Type)
	for k, v := range spec.Metadata {
		require.Equal(t, v, r.Metadata[k], "resource metadata %s", k)
	}
	require.NoError(t, lc.DeleteResource(s.ctx(t), *r))
	deadline := time.Now().Add(s.h.Timeout)
	for find() != nil {
		require.False(t, time.Now().After(deadline), "resource %s still listed after DeleteResource", id)
		time.Sleep(s.h.Tick)
	}
}

func (s *suite) quota(t *testing.T) {
	if s.h.ProvokeQuota == nil {
		t.Log("not applicable: " + "harness cannot provoke a quota error")
		return
	}
	tg := s.open(t)
	s.h.ProvokeQuota(t)
	m := tg.ad.CreateMachine(s.spec(tg))
	inst, err := AdvanceCreate(s.ctx(t), m, s.h.Tick, s.h.Timeout)
	if id := m.ExternalID(); id != "" {
		s.deleteQuietly(tg, id)
	}
	require.Nil(t, inst, "create succeeded despite the provoked quota error")
	require.Error(t, err)
	require.True(t, driver.IsQuota(err), "want a quota error (driver.IsQuota), got %v", err)
	require.Equal(t, "error.quota", driver.MetricOf(err))
}

func (s *suite) quotaReporter(t *testing.T) {
	tg := s.open(t)
	qr, ok := tg.ad.(driver.QuotaReporter)
	if !ok {
		t.Log("not applicable: " + "adapter is no QuotaReporter")
		return
	}
	_, err := qr.QuotaLimits(s.ctx(t))
	require.NoError(t, err)
	need, err := qr.QuotaForLabel(s.ctx(t), tg.lbl)
	require.NoError(t, err)
	require.True(t, need.NonNegative(), "negative need %v", need)
	require.Equal(t, 1.0, need.Get("instances"), "one node is one instance: %v", need)
}

func (s *suite) azLister(t *testing.T) {
	tg := s.open(t)
	al, ok := tg.ad.(driver.AZLister)
	if !ok {
		t.Log("not applicable: " + "adapter is no AZLister")
		return
	}
	azs, err := al.AvailabilityZones(s.ctx(t))
	require.NoError(t, err)
	seen := map[string]bool{}
	for _, az := range azs {
		require.False(t, seen[az], "duplicate zone %q", az)
		seen[az] = true
	}
}

func (s *suite) labelChecker(t *testing.T) {
	tg := s.open(t)
	lc, ok := tg.ad.(driver.LabelChecker)
	if !ok {
		t.Log("not applicable: " + "adapter is no LabelChecker")
		return
	}
	require.True(t, lc.LabelReady(s.ctx(t), tg.lbl), "the harness label %s is not ready", tg.lbl.Name)
}

func (s *suite) imageManager(t *testing.T) {
	if s.h.SkipImages {
		t.Log("not applicable: " + "disabled by the harness")
		return
	}
	tg := s.open(t)
	im, ok := tg.ad.(driver.ImageManager)
	if !ok {
		t.Log("not applicable: " + "adapter is no ImageManager")
		return
	}
	file := filepath.Join(t.TempDir(), "image.qcow2")
	require.NoError(t, os.WriteFile(file, []byte("drivertest image"), 0o644))
	md := map[string]string{
		driver.MetaProviderName: tg.cfg.Name,
		driver.MetaBuildID:      "0123456789abcdef0123456789abcdef",
		driver.MetaUploadID:     "0000000001",
	}
	format := tg.cfg.ImageFormat
	if format == "" {
		format = "qcow2"
	}
	id, err := im.UploadImage(s.ctx(t), driver.UploadSpec{
		ImageName: "drivertest-image-0000000001",
		Diskimage: "drivertest",
		Filename:  file,
		Format:    format,
		Metadata:  md,
	})
	require.NoError(t, err)
	require.NotEmpty(t, id)
	if lc, ok := tg.ad.(driver.LeakCleaner); ok {
		list, err := lc.ListResources(s.ctx(t))
		require.NoError(t, err)
		var found *driver.Resource
		for i := range list {
			if list[i].ID == id {
				found = &list[i]
			}
		}
		require.NotNil(t, found, "uploaded image %s not listed by ListResources", id)
		for k, v := range md {
			require.Equal(t, v, found.Metadata[k], "image metadata %s", k)
		}
	}
	require.NoError(t, im.DeleteImage(s.ctx(t), id))
	if err := im.DeleteImage(s.ctx(t), id); err != nil {
		require.True(t, driver.IsNotFound(err), "second image delete: want nil or NotFound, got %v", err)
	}
}
