package ibmvpc

import (
	"context"
	"time"

	"github.com/IBM/vpc-go-sdk/vpcv1"

	"github.com/nodepool-go/nodepool/driver"
	"github.com/nodepool-go/nodepool/driver/listcache"
)

// Steps of a delete machine.
const (
	dFindFIP = iota // find the floating IP named like the instance
	dFIPGone        // until it is no longer listed
	dFindVM         // find and delete the instance
	dVMGone         // until it is no longer listed
)

// deleteMachine deletes an instance by name: first its floating IP, then
// the instance (whose boot volume goes with it), as upstream does.
type deleteMachine struct {
	a     *Adapter
	name  string
	start time.Time
	state int
	id    string // of the floating IP or instance being deleted
	since time.Time
	job   *future[struct{}]
}

// DeleteMachine returns a machine that deletes the instance named
// externalID and its floating IP.
func (a *Adapter) DeleteMachine(externalID string) driver.DeleteMachine {
	return &deleteMachine{a: a, name: externalID, start: time.Now()}
}

// Advance does one step of the deletion.
func (m *deleteMachine) Advance(ctx context.Context) (bool, error) {
	a := m.a
	if m.job != nil {
		if !m.job.ready() {
			return false, nil
		}
		j := m.job
		m.job = nil
		if j.err != nil && !driver.IsNotFound(j.err) {
			return false, j.err
		}
		m.since = time.Now()
		m.state++
		return false, nil
	}
	switch m.state {
	case dFindFIP:
		id, ok, err := lookup(ctx, m, a.fips, func(f *vpcv1.FloatingIP) (string, string) { return deref(f.Name), deref(f.ID) }, func(c *createdIDs) string { return c.fip })
		if err != nil || !ok {
			return false, err
		}
		if id == "" {
			m.state = dFindVM
			return false, nil
		}
		m.id = id
		m.job = submit(ctx, a, func(ctx context.Context) (struct{}, error) {
			a.log.Debug("deleting floating IP", "name", m.name)
			_, err := a.vpc.DeleteFloatingIPWithContext(ctx, &vpcv1.DeleteFloatingIPOptions{ID: &id})
			return struct{}{}, classify(err, "ibmvpc: deleting floating IP %s", m.name)
		})
		return false, nil
	case dFIPGone:
		gone, err := listedGone(ctx, a.fips, m.since, m.id, func(f *vpcv1.FloatingIP) string { return deref(f.ID) })
		if err != nil || !gone {
			return false, err
		}
		m.state = dFindVM
		return false, nil
	case dFindVM:
		id, ok, err := lookup(ctx, m, a.instances, func(v *vpcv1.Instance) (string, string) { return deref(v.Name), deref(v.ID) }, func(c *createdIDs) string { return c.instance })
		if err != nil || !ok {
			return false, err
		}
		if id == "" {
			a.log.Debug("instance not found when deleting", "name", m.name)
			a.created.Delete(m.name)
			return true, nil
		}
		m.id = id
		m.job = submit(ctx, a, func(ctx context.Context) (struct{}, error) {
			a.log.Debug("deleting instance", "name", m.name)
			_, err := a.vpc.DeleteInstanceWithContext(ctx, &vpcv1.DeleteInstanceOptions{ID: &id})
			return struct{}{}, classify(err, "ibmvpc: deleting instance %s", m.name)
		})
		return false, nil
	case dVMGone:
		gone, err := listedGone(ctx, a.instances, m.since, m.id, func(v *vpcv1.Instance) string { return deref(v.ID) })
		if err != nil || !gone {
			return false, err
		}
		a.created.Delete(m.name)
		return true, nil
	}
	return true, nil
}

// lookup finds the id of the object named m.name in a listing that
// started after the machine did, or that this adapter created; ok is
// false while no such listing exists yet.
func lookup[T any](ctx context.Context, m *deleteMachine, c *listcache.Cache[T], nameID func(*T) (string, string), known func(*createdIDs) string) (string, bool, error) {
	list, _, ok, err := c.Fresh(ctx, m.start)
	if err != nil || !ok {
		return "", false, err
	}
	for i := range list {
		if n, id := nameID(&list[i]); n == m.name {
			return id, true, nil
		}
	}
	if v, ok := m.a.created.Load(m.name); ok {
		cr := v.(*createdIDs)
		cr.mu.Lock()
		defer cr.mu.Unlock()
		return known(cr), true, nil
	}
	return "", true, nil
}

// listedGone reports whether id is absent from a listing that started
// after since.
func listedGone[T any](ctx context.Context, c *listcache.Cache[T], since time.Time, id string, idOf func(*T) string) (bool, error) {
	list, _, ok, err := c.Fresh(ctx, since)
	if err != nil || !ok {
		return false, err
	}
	for i := range list {
		if idOf(&list[i]) == id {
			return false, nil
		}
	}
	return true, nil
}
