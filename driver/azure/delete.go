package azure

import (
	"context"
	"sync"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/compute/armcompute/v6"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/network/armnetwork/v7"

	"github.com/nodepool-go/nodepool/driver"
)

// Delete machine states.
const (
	dsStart   = "start"
	dsVMWait  = "deleting vm"
	dsNIC     = "delete nic"
	dsNICWait = "deleting nic"
	dsPIP     = "delete public ips"
	dsPIPWait = "deleting public ips"
	dsDisk    = "delete os disk"
	dsDone    = "complete"
)

// DeleteMachine returns a machine deleting a VM, then its NIC, then its
// public IP addresses, then its OS disk. Resources that do not exist are
// skipped, so an unknown id completes at once.
func (a *Adapter) DeleteMachine(externalID string) driver.DeleteMachine {
	return &deleteMachine{a: a, name: externalID, state: dsStart}
}

type deleteMachine struct {
	a    *Adapter
	name string

	mu    sync.Mutex
	state string
	disk  string // OS disk name ("" when unknown)
	job   *future[bool]
	since time.Time
}

// step runs fn on a worker or returns its result (gone: nothing to wait
// for).
func (m *deleteMachine) step(fn func(ctx context.Context) (bool, error)) (gone, ok bool, err error) {
	if m.job == nil {
		m.job = run(m.a, fn)
	}
	v, err, done := m.job.ready()
	if !done {
		return false, false, nil
	}
	m.job = nil
	if err != nil {
		return false, false, err
	}
	return v, true, nil
}

// Advance does one small step.
func (m *deleteMachine) Advance(ctx context.Context) (bool, error) {
	if err := ctx.Err(); err != nil {
		return false, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	a := m.a
	rg := a.st.ResourceGroup
	switch m.state {
	case dsStart:
		gone, ok, err := m.step(func(ctx context.Context) (bool, error) {
			vm, err := a.vms.Get(ctx, rg, m.name, nil)
			if isNotFound(err) {
				return true, nil
			}
			if err != nil {
				return false, classify(err, "getting VM %s", m.name)
			}
			if p := vm.Properties; p != nil && p.StorageProfile != nil && p.StorageProfile.OSDisk != nil {
				m.disk = deref(p.StorageProfile.OSDisk.Name)
			}
			poller, err := a.vms.BeginDelete(ctx, rg, m.name, nil)
			if err != nil {
				return false, classify(err, "deleting VM %s", m.name)
			}
			return poller.Done(), nil
		})
		if !ok {
			return false, err
		}
		m.next(gone, dsVMWait, dsNIC)
	case dsVMWait:
		gone, retry := waitGone(a.vmList, m.since, m.name, vmName, vmDeleting)
		m.after(gone, retry, dsNIC, dsStart)
	case dsNIC:
		gone, ok, err := m.step(func(ctx context.Context) (bool, error) {
			p, err := a.nics.BeginDelete(ctx, rg, m.name+"-nic", nil)
			if errInUse(err) {
				return false, nil
			}
			if err != nil && !isNotFound(err) {
				return false, classify(err, "deleting network interface %s-nic", m.name)
			}
			return err != nil || p.Done(), nil
		})
		if !ok {
			return false, err
		}
		m.next(gone, dsNICWait, dsPIP)
	case dsNICWait:
		gone, retry := waitGone(a.nicList, m.since, m.name+"-nic", nicName, nicDeleting)
		m.after(gone, retry, dsPIP, dsNIC)
	case dsPIP:
		gone, ok, err := m.step(func(ctx context.Context) (bool, error) {
			all := true
			for _, v := range []string{"IPv4", "IPv6"} {
				name := m.name + "-pip-" + v
				p, err := a.pips.BeginDelete(ctx, rg, name, nil)
				if errInUse(err) {
					all = false
					continue
				}
				if err != nil && !isNotFound(err) {
					return false, classify(err, "deleting public IP address %s", name)
				}
				all = all && (err != nil || p.Done())
			}
			return all, nil
		})
		if !ok {
			return false, err
		}
		m.next(gone, dsPIPWait, dsDisk)
	case dsPIPWait:
		gone4, retry4 := waitGone(a.pipList, m.since, m.name+"-pip-IPv4", pipName, pipDeleting)
		gone6, retry6 := waitGone(a.pipList, m.since, m.name+"-pip-IPv6", pipName, pipDeleting)
		m.after(gone4 && gone6, retry4 || retry6, dsDisk, dsPIP)
	case dsDisk:
		if m.disk == "" {
			m.state = dsDone
			return true, nil
		}
		// The disk listing lags far behind, so the deletion is not
		// waited for: disks are the last step.
		_, ok, err := m.step(func(ctx context.Context) (bool, error) {
			_, err := a.disks.BeginDelete(ctx, rg, m.disk, nil)
			if err != nil && !isNotFound(err) {
				return false, classify(err, "deleting disk %s", m.disk)
			}
			return true, nil
		})
		if !ok {
			return false, err
		}
		m.state = dsDone
		return true, nil
	case dsDone:
		return true, nil
	}
	return false, nil
}

// after leaves a wait state: on when gone, back to the delete step when
// the resource is still there undeleted.
func (m *deleteMachine) after(gone, retry bool, next, again string) {
	switch {
	case gone:
		m.state = next
	case retry:
		m.state = again
	}
}

// next moves on: to skip when the resource is already gone, else to wait
// (after which the step is retried or passed).
func (m *deleteMachine) next(gone bool, wait, skip string) {
	m.since = time.Now()
	if gone {
		m.state = skip
		return
	}
	m.state = wait
}

// waitGone reads a listing newer than since: gone when it does not show
// the resource; retry when it shows it not being deleted (a delete
// refused because it was still in use, or not yet applied).
func waitGone[T any](c *listCache[T], since time.Time, name string, nameOf func(T) *string, deleting func(T) bool) (gone, retry bool) {
	list, ok, _ := c.fresh(since)
	if !ok {
		return false, false
	}
	it, found := byName(list, name, nameOf)
	if !found {
		return true, false
	}
	return false, !deleting(it)
}

func vmDeleting(v *armcompute.VirtualMachine) bool {
	return v.Properties != nil && deref(v.Properties.ProvisioningState) == "Deleting"
}

func nicDeleting(v *armnetwork.Interface) bool {
	return v.Properties != nil && deref(v.Properties.ProvisioningState) == armnetwork.ProvisioningStateDeleting
}

func pipDeleting(v *armnetwork.PublicIPAddress) bool {
	return v.Properties != nil && deref(v.Properties.ProvisioningState) == armnetwork.ProvisioningStateDeleting
}
