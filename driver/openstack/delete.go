package openstack

import (
	"context"
	"sync"
	"time"

	"github.com/gophercloud/gophercloud/v2/openstack/compute/v2/servers"
	"github.com/gophercloud/gophercloud/v2/openstack/networking/v2/extensions/layer3/floatingips"
	"github.com/gophercloud/gophercloud/v2/openstack/networking/v2/ports"

	"github.com/nodepool-go/nodepool/driver"
)

// DeleteMachine returns a machine deleting one server: its floating IPs
// are released, the server is deleted, and the machine completes once
// the server is gone from the listing.
func (a *Adapter) DeleteMachine(externalID string) driver.DeleteMachine {
	return &deleteMachine{a: a, id: externalID}
}

type deleteMachine struct {
	a  *Adapter
	id string

	mu        sync.Mutex
	call      *future[struct{}]
	deletedAt time.Time
	done      bool
}

// Advance submits the deletion, then polls the server listing.
func (m *deleteMachine) Advance(ctx context.Context) (bool, error) {
	if err := ctx.Err(); err != nil {
		return false, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.done {
		return true, nil
	}
	if m.call == nil {
		m.call = submit(ctx, m.a, m.deleteServer)
		return false, nil
	}
	if m.deletedAt.IsZero() {
		if !m.call.ready() {
			return false, nil
		}
		if err := m.call.err; err != nil {
			return false, err
		}
		m.deletedAt = time.Now()
	}
	s, found, err := m.a.findServer(ctx, m.id, m.deletedAt)
	if err != nil {
		return false, err
	}
	if found && (s == nil || s.Status == "DELETED") {
		m.done = true
		return true, nil
	}
	return false, nil
}

// deleteServer releases the server's floating IPs and deletes it.
func (m *deleteMachine) deleteServer(ctx context.Context, cl *clients) (struct{}, error) {
	a := m.a
	s, err := servers.Get(ctx, cl.compute, m.id).Extract()
	if err != nil {
		return struct{}{}, classify(err, "openstack: getting server %s", m.id)
	}
	if err := a.releaseFloatingIPs(ctx, cl, s); err != nil {
		a.log.Warn("releasing floating ips failed", "server", m.id, "error", err)
	}
	if err := servers.Delete(ctx, cl.compute, m.id).ExtractErr(); err != nil {
		return struct{}{}, classify(err, "openstack: deleting server %s", m.id)
	}
	return struct{}{}, nil
}

// releaseFloatingIPs deletes the floating IPs attached to a server's ports
// (no retries; leftovers are found by leak cleanup through their tags).
func (a *Adapter) releaseFloatingIPs(ctx context.Context, cl *clients, s *servers.Server) error {
	floating := false
	for _, list := range addresses(s) {
		for _, ad := range list {
			floating = floating || ad.Type == "floating"
		}
	}
	if !floating {
		return nil
	}
	page, err := ports.List(cl.network, ports.ListOpts{DeviceID: s.ID}).AllPages(ctx)
	if err != nil {
		return classify(err, "openstack: listing ports of server %s", s.ID)
	}
	plist, err := ports.ExtractPorts(page)
	if err != nil {
		return err
	}
	for _, p := range plist {
		fpage, err := floatingips.List(cl.network, floatingips.ListOpts{PortID: p.ID}).AllPages(ctx)
		if err != nil {
			return classify(err, "openstack: listing floating ips of port %s", p.ID)
		}
		fips, err := floatingips.ExtractFloatingIPs(fpage)
		if err != nil {
			return err
		}
		for _, f := range fips {
			if err := floatingips.Delete(ctx, cl.network, f.ID).ExtractErr(); err != nil && !driver.IsNotFound(classify(err, "")) {
				return classify(err, "openstack: deleting floating ip %s", f.ID)
			}
		}
	}
	return nil
}
