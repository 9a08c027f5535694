package drivertest

import (
	"context"
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/nodepool-go/nodepool/driver"
)

// RegistrarHarness tells RunRegistrar how to reach a driver whose nodes are
// hosts that already exist (its adapter is a driver.Registrar): the
// launcher registers the hosts' slots instead of launching instances.
//
// The hosts are named by Slot.HostKey. The provider the harness opens
// should list at least one host that answers (Live) and one that does not
// (Dead), so that both outcomes of Check and Alive are exercised.
type RegistrarHarness struct {
	// Open returns a fresh adapter, which must implement driver.Registrar,
	// and its provider config. Each subtest opens its own; the harness
	// registers any cleanup with t.Cleanup.
	Open func(t *testing.T) (driver.Adapter, *driver.ProviderConfig)
	// Slots gives, for every host the provider lists (keyed by
	// Slot.HostKey), the number of slots the configuration gives it
	// (max-parallel-jobs). Slots must list exactly these hosts, each with
	// exactly that many slots. Required.
	Slots map[string]int
	// Live are the hosts that answer, keyed by Slot.HostKey, with the host
	// keys Check must return for them (in any order). Alive must succeed
	// for every one of their slots.
	Live map[string][]string
	// Dead are hosts (Slot.HostKey) that do not answer: Check and Alive
	// must fail with an error that names the host.
	Dead []string
	// HostError, when set, must accept every error Check and Alive return
	// for a dead or unknown host (a typed error, checked with errors.Is or
	// errors.As).
	HostError func(err error) bool
	// CreateError, when set, must accept the error a create machine fails
	// with.
	CreateError func(err error) bool
	// Contacts, when set, returns how many connections the hosts have
	// received so far. ListInstances, CreateMachine and DeleteMachine must
	// leave it unchanged; the subtests that check this run before any
	// subtest that contacts a host.
	Contacts func() int
	// Timeout bounds one call (and one delete); default 30 s.
	Timeout time.Duration
	// Tick is the pause between two Advance calls of a delete; default
	// 5 ms.
	Tick time.Duration
}

// RunRegistrar runs the conformance suite of a registering driver: the
// slots are listed, stable and well formed; create machines refuse;
// deleting a host's node completes without touching the host;
// ListInstances works; Check returns a live host's keys and fails clearly
// for a dead or unknown one, and Alive likewise.
func RunRegistrar(t *testing.T, h RegistrarHarness) {
	t.Helper()
	require.NotNil(t, h.Open, "drivertest: RegistrarHarness.Open is required")
	require.NotEmpty(t, h.Slots, "drivertest: RegistrarHarness.Slots is required")
	for hk := range h.Live {
		require.Contains(t, h.Slots, hk, "drivertest: Live host %s is not in RegistrarHarness.Slots", hk)
	}
	for _, hk := range h.Dead {
		require.Contains(t, h.Slots, hk, "drivertest: Dead host %s is not in RegistrarHarness.Slots", hk)
		require.NotContains(t, h.Live, hk, "drivertest: host %s is both Live and Dead", hk)
	}
	if h.Timeout == 0 {
		h.Timeout = 30 * time.Second
	}
	if h.Tick == 0 {
		h.Tick = 5 * time.Millisecond
	}
	s := &regSuite{h: h}
	// The subtests that require the hosts untouched come first: a
	// connection made by Alive may be accepted by the host only after
	// Alive returned, and must not be counted against a later subtest.
	t.Run("Slots", s.slots)
	t.Run("ListInstances", s.listInstances)
	t.Run("CreateRefused", s.createRefused)
	t.Run("DeleteLeavesHost", s.deleteLeavesHost)
	t.Run("Check", s.check)
	t.Run("Alive", s.alive)
	t.Run("UnknownHost", s.unknownHost)
}

type regSuite struct{ h RegistrarHarness }

type regTarget struct {
	ad    driver.Adapter
	reg   driver.Registrar
	cfg   *driver.ProviderConfig
	slots []driver.Slot
	hosts map[string][]driver.Slot // by HostKey, in Index order
}

func (s *regSuite) ctx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), s.h.Timeout)
	t.Cleanup(cancel)
	return ctx
}

// open opens the adapter and lists its slots.
func (s *regSuite) open(t *testing.T) *regTarget {
	t.Helper()
	ad, cfg := s.h.Open(t)
	require.NotNil(t, ad)
	require.NotNil(t, cfg)
	reg, ok := ad.(driver.Registrar)
	require.True(t, ok, "adapter %T is no driver.Registrar", ad)
	slots, err := reg.Slots(s.ctx(t))
	require.NoError(t, err, "Slots")
	tg := &regTarget{ad: ad, reg: reg, cfg: cfg, slots: slots, hosts: map[string][]driver.Slot{}}
	for _, sl := range slots {
		tg.hosts[sl.HostKey()] = append(tg.hosts[sl.HostKey()], sl)
	}
	for _, hs := range tg.hosts {
		sort.Slice(hs, func(i, j int) bool { return hs[i].Index < hs[j].Index })
	}
	return tg
}

// host returns the slots of a host the harness names.
func (tg *regTarget) host(t *testing.T, hk string) []driver.Slot {
	t.Helper()
	hs := tg.hosts[hk]
	require.NotEmpty(t, hs, "host %s has no slots", hk)
	return hs
}

func (s *regSuite) contacts() int {
	if s.h.Contacts == nil {
		return 0
	}
	return s.h.Contacts()
}

func (s *regSuite) slots(t *testing.T) {
	tg := s.open(t)
	require.NotEmpty(t, tg.slots, "Slots lists nothing")

	again, err := tg.reg.Slots(s.ctx(t))
	require.NoError(t, err, "second Slots")
	require.Equal(t, tg.slots, again, "Slots differs between two calls")

	got := map[string]int{}
	for hk, hs := range tg.hosts {
		got[hk] = len(hs)
	}
	require.Equal(t, s.h.Slots, got, "slots per host (HostKey)")

	for _, hk := range slices.Sorted(maps.Keys(tg.hosts)) {
		hs := tg.hosts[hk]
		first := hs[0]
		for i, sl := range hs {
			require.Equal(t, i, sl.Index, "host %s: slot indexes must be 0..%d, each once", hk, len(hs)-1)
			// The launcher checks a host once, through any of its slots,
			// and records the result on all of them.
			require.Equal(t, first.Pool, sl.Pool, "host %s: slots in different pools", hk)
			require.Equal(t, first.Labels, sl.Labels, "host %s: slots with different labels", hk)
			require.Equal(t, first.ConnectionType, sl.ConnectionType, "host %s: connection type differs between slots", hk)
			require.Equal(t, first.ShellType, sl.ShellType, "host %s: shell type differs between slots", hk)
			require.Equal(t, first.PythonPath, sl.PythonPath, "host %s: python path differs between slots", hk)
		}
		require.NotEmpty(t, first.Host, "slot without a host name")
		require.Positive(t, first.ConnectionPort, "host %s: no connection port", hk)
		require.NotEmpty(t, first.ConnectionType, "host %s: no connection type", hk)
		pool := tg.cfg.Pool(first.Pool)
		require.NotNil(t, pool, "host %s: slot pool %q is not a pool of the provider", hk, first.Pool)
		require.NotEmpty(t, first.Labels, "host %s: slot offers no label", hk)
		for _, l := range first.Labels {
			require.NotNil(t, pool.Label(l), "host %s: label %q is not a label of pool %s", hk, l, pool.Name)
		}
	}
}

func (s *regSuite) listInstances(t *testing.T) {
	tg := s.open(t)
	before := s.contacts()
	_, err := tg.ad.ListInstances(s.ctx(t))
	require.NoError(t, err, "ListInstances")
	require.Equal(t, before, s.contacts(), "ListInstances contacted a host")
}

func (s *regSuite) createRefused(t *testing.T) {
	tg := s.open(t)
	require.NotEmpty(t, tg.slots)
	sl := tg.slots[0]
	pool := tg.cfg.Pool(sl.Pool)
	require.NotNil(t, pool)
	require.NotEmpty(t, sl.Labels)
	lbl := pool.Label(sl.Labels[0])
	require.NotNil(t, lbl)
	id := fmt.Sprintf("%010d", rand.IntN(1_000_000_000)+9_000_000_000)
	spec := driver.CreateSpec{
		Hostname: "np" + id,
		Label:    lbl,
		Pool:     pool,
		Metadata: map[string]string{
			driver.MetaNodeID:       id,
			driver.MetaPoolName:     pool.Name,
			driver.MetaProviderName: tg.cfg.Name,
		},
		Request: driver.RequestInfo{ID: "200-0000000001", Labels: []string{lbl.Name}, Requestor: "drivertest"},
	}
	before := s.contacts()
	m := tg.ad.CreateMachine(spec)
	require.NotNil(t, m)
	// A refusal is final: every Advance fails, none makes progress.
	for i := 0; i < 3; i++ {
		inst, err := m.Advance(s.ctx(t))
		require.Nil(t, inst, "a create machine of a registering driver made an instance")
		require.Error(t, err, "a create machine of a registering driver did not refuse")
		require.NotEmpty(t, err.Error(), "the refusal has no message")
		require.False(t, driver.IsTransient(err), "the refusal is transient, so the launcher would retry it: %v", err)
		require.False(t, driver.IsQuota(err), "the refusal is a quota error, so the pool would pause: %v", err)
		if s.h.CreateError != nil {
			require.True(t, s.h.CreateError(err), "CreateError does not accept %v", err)
		}
	}
	require.Empty(t, m.ExternalID(), "a refused create reports an external id")
	require.Equal(t, before, s.contacts(), "a create machine contacted a host")
}

func (s *regSuite) deleteLeavesHost(t *testing.T) {
	tg := s.open(t)
	before := s.contacts()
	for hk := range s.h.Slots {
		hs := tg.host(t, hk)
		err := AdvanceDelete(s.ctx(t), tg.ad.DeleteMachine(hs[0].Host), s.h.Tick, s.h.Timeout)
		require.NoError(t, err, "deleting the node of host %s", hk)
	}
	require.Equal(t, before, s.contacts(), "DeleteMachine contacted a host")
	after, err := tg.reg.Slots(s.ctx(t))
	require.NoError(t, err, "Slots after the deletes")
	require.Equal(t, tg.slots, after, "deleting nodes changed the slots")
	for hk := range s.h.Live {
		require.NoError(t, tg.reg.Alive(s.ctx(t), tg.host(t, hk)[0]), "host %s is no longer alive after its node was deleted", hk)
	}
}

// hostError checks the error of Check or Alive for a host that must fail.
func (s *regSuite) hostError(t *testing.T, what string, sl driver.Slot, err error) {
	t.Helper()
	require.Error(t, err, "%s of host %s succeeded", what, sl.HostKey())
	require.True(t, strings.Contains(err.Error(), sl.Host), "%s error does not name host %s: %v", what, sl.Host, err)
	if s.h.HostError != nil {
		require.True(t, s.h.HostError(err), "HostError does not accept the %s error %v", what, err)
	}
}

func (s *regSuite) check(t *testing.T) {
	tg := s.open(t)
	for hk, want := range s.h.Live {
		for _, sl := range tg.host(t, hk) {
			keys, err := tg.reg.Check(s.ctx(t), sl)
			require.NoError(t, err, "Check of live host %s slot %d", hk, sl.Index)
			require.ElementsMatch(t, want, keys, "host keys of %s slot %d", hk, sl.Index)
		}
	}
	for _, hk := range s.h.Dead {
		sl := tg.host(t, hk)[0]
		keys, err := tg.reg.Check(s.ctx(t), sl)
		s.hostError(t, "Check", sl, err)
		require.Empty(t, keys, "Check of dead host %s returned keys", hk)
	}
}

func (s *regSuite) alive(t *testing.T) {
	tg := s.open(t)
	for hk := range s.h.Live {
		for _, sl := range tg.host(t, hk) {
			require.NoError(t, tg.reg.Alive(s.ctx(t), sl), "Alive of live host %s slot %d", hk, sl.Index)
		}
	}
	for _, hk := range s.h.Dead {
		for _, sl := range tg.host(t, hk) {
			s.hostError(t, "Alive", sl, tg.reg.Alive(s.ctx(t), sl))
		}
	}
}

// unknownHost checks a slot whose host left the configuration: it must
// not be checked or reported alive.
func (s *regSuite) unknownHost(t *testing.T) {
	tg := s.open(t)
	require.NotEmpty(t, tg.slots)
	gone := tg.slots[0]
	gone.Host = "drivertest-unconfigured-host.invalid"
	keys, err := tg.reg.Check(s.ctx(t), gone)
	s.hostError(t, "Check", gone, err)
	require.Empty(t, keys)
	s.hostError(t, "Alive", gone, tg.reg.Alive(s.ctx(t), gone))
}
