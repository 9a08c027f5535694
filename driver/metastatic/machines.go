package metastatic

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/nodepool-go/nodepool/driver"
	"github.com/nodepool-go/nodepool/zkclient"
)

// CreateMachine allocates a slot for the node.
func (a *Adapter) CreateMachine(spec driver.CreateSpec) driver.CreateMachine {
	return &createMachine{a: a, spec: spec, nodeID: spec.Metadata[driver.MetaNodeID]}
}

// DeleteMachine frees the node's slot.
func (a *Adapter) DeleteMachine(externalID string) driver.DeleteMachine {
	return &deleteMachine{a: a, nodeID: externalID}
}

type createState int

const (
	stateStart createState = iota
	stateRequesting
	stateComplete
)

type createMachine struct {
	a      *Adapter
	spec   driver.CreateSpec
	nodeID string
	state  createState
	rec    *record
	slot   int
}

func (m *createMachine) ExternalID() string { return m.nodeID }

func (m *createMachine) Advance(ctx context.Context) (*driver.Instance, error) {
	a := m.a
	if err := a.init(ctx); err != nil {
		return nil, err
	}
	if m.state == stateStart {
		if m.nodeID == "" {
			return nil, fmt.Errorf("%s: create spec without %s", Name, driver.MetaNodeID)
		}
		r, slot, err := a.allocate(ctx, m.spec.Label, m.nodeID)
		if err != nil {
			return nil, err
		}
		m.rec, m.slot, m.state = r, slot, stateRequesting
	}
	if m.state == stateRequesting {
		a.mu.Lock()
		a.checkRecord(ctx, m.rec)
		failed, have := m.rec.failed, m.rec.nodeID != ""
		a.mu.Unlock()
		if failed {
			return nil, errors.New("backing node failed")
		}
		if !have {
			return nil, nil
		}
		m.state = stateComplete
	}
	a.mu.Lock()
	backingID := m.rec.nodeID
	a.mu.Unlock()
	bn, err := a.zk.GetNode(ctx, backingID)
	if errors.Is(err, zkclient.ErrNoNode) {
		a.mu.Lock()
		a.lost(ctx, m.rec)
		a.mu.Unlock()
		return nil, fmt.Errorf("backing node %s vanished", backingID)
	}
	if err != nil {
		return nil, err
	}
	dd, err := json.Marshal(DriverData{Metadata: m.spec.Metadata, BackingNode: backingID, Slot: m.slot, Node: m.nodeID})
	if err != nil {
		return nil, err
	}
	slot := m.slot
	return &driver.Instance{
		ExternalID:     m.nodeID,
		InterfaceIP:    bn.InterfaceIP,
		PublicIPv4:     bn.PublicIPv4,
		PublicIPv6:     bn.PublicIPv6,
		PrivateIPv4:    bn.PrivateIPv4,
		Cloud:          bn.Cloud,
		Region:         bn.Region,
		AZ:             bn.AZ,
		Metadata:       m.spec.Metadata,
		DriverData:     dd,
		Slot:           &slot,
		Username:       bn.Username,
		PythonPath:     bn.PythonPath,
		ShellType:      bn.ShellType,
		ConnectionType: bn.ConnectionType,
		ConnectionPort: bn.Port(),
		HostKeys:       append([]string(nil), bn.HostKeys...),
	}, nil
}

type deleteMachine struct {
	a      *Adapter
	nodeID string
}

func (m *deleteMachine) Advance(ctx context.Context) (bool, error) {
	if err := m.a.init(ctx); err != nil {
		if errors.Is(err, ErrStandby) {
			// The serving launcher frees the slot once the record is gone.
			return true, nil
		}
		return false, err
	}
	m.a.deallocate(m.nodeID)
	return true, nil
}
