package gce

import (
	"context"
	"errors"
	"sync"
	"time"

	compute "google.golang.org/api/compute/v1"
	"google.golang.org/api/googleapi"

	"github.com/nodepool-go/nodepool/driver"
)

func asAPIError(err error) (*googleapi.Error, bool) {
	var ge *googleapi.Error
	ok := errors.As(err, &ge)
	return ge, ok
}

// isNotReady reports a 400 resourceNotReady: the instance is already
// being deleted.
func isNotReady(err error) bool {
	ge, ok := asAPIError(err)
	if !ok || ge.Code != 400 {
		return false
	}
	for _, e := range ge.Errors {
		if e.Reason == "resourceNotReady" {
			return true
		}
	}
	return false
}

// DeleteMachine returns a machine deleting one instance: it sends the
// delete, waits for the zone operation to leave the pending listing, and
// completes once the instance is gone from (or TERMINATED in) the
// instance listing. A name that does not exist is done at once.
func (a *Adapter) DeleteMachine(externalID string) driver.DeleteMachine {
	return &deleteMachine{a: a, id: externalID}
}

type deleteMachine struct {
	a  *Adapter
	id string

	mu        sync.Mutex
	call      *future[*compute.Operation]
	opName    string
	since     time.Time
	sent      bool // the delete was accepted (or was already under way)
	waitOp    bool
	opChecked bool
	check     *future[*compute.Operation]
	done      bool
}

// Advance sends the delete, then polls the shared listings.
func (m *deleteMachine) Advance(ctx context.Context) (bool, error) {
	if err := ctx.Err(); err != nil {
		return false, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	a := m.a
	if m.done {
		return true, nil
	}
	if !m.sent {
		if m.call == nil {
			m.call = submit(ctx, a, func(ctx context.Context) (*compute.Operation, error) {
				return a.deleteInstance(ctx, m.id)
			})
			return false, nil
		}
		if !m.call.ready() {
			return false, nil
		}
		op, err := m.call.val, m.call.err
		m.call = nil
		switch {
		case driver.IsNotFound(err):
			m.done = true
			return true, nil
		case isNotReady(err):
			m.opChecked = true // someone else's deletion is under way
		case err != nil:
			return false, err
		default:
			m.opName = op.Name
			m.waitOp = op.Status != "DONE"
			if !m.waitOp {
				if err := operationError(op, "deleting instance "+m.id); err != nil {
					return false, err
				}
				m.opChecked = true
			}
		}
		m.sent, m.since = true, time.Now()
	}
	if m.check != nil {
		if !m.check.ready() {
			return false, nil
		}
		op, err := m.check.val, m.check.err
		m.check = nil
		if err != nil {
			return false, err
		}
		if op.Status != "DONE" {
			m.waitOp, m.since = true, time.Now()
			return false, nil
		}
		if err := operationError(op, "deleting instance "+m.id); err != nil {
			m.sent = false // send the delete again on the next pass
			return false, err
		}
		m.opChecked = true
	}
	if m.waitOp {
		ops, at, ok, err := a.pending.Fresh(ctx, m.since)
		if err != nil || !ok {
			return false, err
		}
		for _, op := range ops {
			if op.Name == m.opName {
				return false, nil
			}
		}
		m.waitOp, m.since = false, at
	}
	list, _, ok, err := a.instances.Fresh(ctx, m.since)
	if err != nil || !ok {
		return false, err
	}
	for _, in := range list {
		if in.Name == m.id && in.Status != "TERMINATED" {
			if !m.opChecked && m.opName != "" {
				// Still listed after its operation finished: the
				// operation tells whether the delete failed.
				m.check = submit(ctx, a, func(ctx context.Context) (*compute.Operation, error) {
					op, err := a.svc.ZoneOperations.Get(a.st.Project, a.st.Zone, m.opName).Context(ctx).Do()
					return op, classify(err, "gce: operation %s of instance %s", m.opName, m.id)
				})
			}
			return false, nil
		}
	}
	m.done = true
	return true, nil
}

func (a *Adapter) deleteInstance(ctx context.Context, name string) (*compute.Operation, error) {
	op, err := a.svc.Instances.Delete(a.st.Project, a.st.Zone, name).Context(ctx).Do()
	if err != nil {
		if isNotReady(err) {
			return nil, err
		}
		return nil, classify(err, "gce: deleting instance %s", name)
	}
	a.log.Debug("instance delete accepted", "instance", name, "operation", op.Name)
	return op, nil
}
