package gce

import (
	"context"
	"fmt"
	"path"
	"sort"
	"strings"
	"sync"
	"time"

	compute "google.golang.org/api/compute/v1"

	"github.com/nodepool-go/nodepool/driver"
	"github.com/nodepool-go/nodepool/quota"
)

// Create machine states.
const (
	csStart    = "start"
	csInsert   = "inserting instance"
	csWaitOp   = "waiting for operation"
	csCheckOp  = "checking operation"
	csCreating = "creating instance"
	csComplete = "complete"
	csFailed   = "failed"
)

// CreateMachine returns a machine creating one instance named after the
// node's hostname.
func (a *Adapter) CreateMachine(spec driver.CreateSpec) driver.CreateMachine {
	return &createMachine{a: a, spec: spec, state: csStart}
}

type createMachine struct {
	a    *Adapter
	spec driver.CreateSpec

	mu        sync.Mutex
	state     string
	id        string
	insert    *future[*compute.Operation]
	opName    string
	since     time.Time // listings must start after this to be trusted
	opChecked bool      // the operation is known to have succeeded
	adopted   bool      // the name existed: it must be ours
	check     *future[*compute.Operation]
	inst      *driver.Instance
	err       error
}

// ExternalID returns the instance name once the insert was sent.
func (m *createMachine) ExternalID() string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.id
}

func (m *createMachine) fail(err error) (*driver.Instance, error) {
	m.state, m.err = csFailed, err
	return nil, err
}

// Advance does one small step; API calls run on the adapter's workers
// and polling reads the shared listings.
func (m *createMachine) Advance(ctx context.Context) (*driver.Instance, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	a := m.a
	for {
		switch m.state {
		case csStart:
			// The name is the id: once the request is out, the instance
			// may exist and must be deleted if the launch fails.
			m.id = m.spec.Hostname
			m.insert = submit(ctx, a, m.insertInstance)
			m.state = csInsert
		case csInsert:
			if !m.insert.ready() {
				return nil, nil
			}
			op, err := m.insert.val, m.insert.err
			switch {
			case isAlreadyExists(err):
				// An earlier attempt's request got through: take the
				// instance if it carries this node's metadata.
				m.adopted, m.opChecked, m.since = true, true, time.Now()
				m.state = csCreating
				continue
			case err != nil && driver.IsTransient(err):
				m.state = csStart
				return nil, err
			case err != nil:
				return m.fail(err)
			}
			m.opName, m.since = op.Name, time.Now()
			if op.Status == "DONE" {
				if err := operationError(op, "creating instance "+m.id); err != nil {
					return m.fail(err)
				}
				m.opChecked = true
				m.state = csCreating
				continue
			}
			m.state = csWaitOp
		case csWaitOp:
			ops, at, ok, err := a.pending.Fresh(ctx, m.since)
			if err != nil || !ok {
				return nil, err
			}
			for _, op := range ops {
				if op.Name == m.opName {
					return nil, nil
				}
			}
			m.since = at
			m.state = csCreating
		case csCheckOp:
			if !m.check.ready() {
				return nil, nil
			}
			op, err := m.check.val, m.check.err
			if err != nil {
				if driver.IsTransient(err) {
					m.check = submit(ctx, a, m.getOperation)
					return nil, err
				}
				return m.fail(err)
			}
			if op.Status != "DONE" {
				m.since = time.Now()
				m.state = csWaitOp
				continue
			}
			if err := operationError(op, "creating instance "+m.id); err != nil {
				return m.fail(err)
			}
			m.opChecked = true
			m.state = csCreating
		case csCreating:
			return m.creating(ctx)
		case csComplete:
			return m.inst, nil
		default:
			return nil, m.err
		}
	}
}

// creating watches the instance in the shared listing until it runs.
func (m *createMachine) creating(ctx context.Context) (*driver.Instance, error) {
	a := m.a
	list, _, ok, err := a.instances.Fresh(ctx, m.since)
	if err != nil || !ok {
		return nil, err
	}
	var in *compute.Instance
	for _, i := range list {
		if i.Name == m.id {
			in = i
		}
	}
	switch {
	case in == nil && !m.opChecked:
		// The operation is done but the instance is not listed: the
		// operation tells whether it failed.
		m.check = submit(ctx, a, m.getOperation)
		m.state = csCheckOp
		return nil, nil
	case in == nil && m.adopted:
		m.state = csStart
		return nil, driver.TransientError("gce: instance name %s was in use and is gone: inserting again", m.id)
	case in == nil:
		return nil, nil // not listed yet
	case m.adopted && metadata(in)[driver.MetaNodeID] != m.spec.Metadata[driver.MetaNodeID]:
		return m.fail(fmt.Errorf("gce: instance %s exists and belongs to another node", m.id))
	}
	switch in.Status {
	case "RUNNING":
		m.inst = a.instance(ctx, in)
		m.state = csComplete
		return m.inst, nil
	case "PROVISIONING", "STAGING":
		return nil, nil
	case "STOPPING", "TERMINATED", "SUSPENDING", "SUSPENDED":
		if m.adopted {
			m.state = csStart
			return nil, driver.TransientError("gce: instance name %s is in use by an instance in status %s", m.id, in.Status)
		}
	}
	return m.fail(driver.WithMetric(fmt.Errorf("gce: instance %s is in status %s", m.id, in.Status), "error.status"))
}

func (m *createMachine) getOperation(ctx context.Context) (*compute.Operation, error) {
	a := m.a
	op, err := a.svc.ZoneOperations.Get(a.st.Project, a.st.Zone, m.opName).Context(ctx).Do()
	if err != nil {
		return nil, classify(err, "gce: operation %s of instance %s", m.opName, m.id)
	}
	return op, nil
}

func isAlreadyExists(err error) bool {
	ge, ok := asAPIError(err)
	if !ok || ge.Code != 409 {
		return false
	}
	for _, e := range ge.Errors {
		if e.Reason == "alreadyExists" {
			return true
		}
	}
	return false
}

// insertInstance builds the instance as upstream does and inserts it:
// a boot disk from the cloud image with the label's volume type and size,
// the label's machine type, the default network with an external NAT
// address, no service account, and the nodepool metadata plus the cloud
// image's ssh key.
func (m *createMachine) insertInstance(ctx context.Context) (*compute.Operation, error) {
	a, spec := m.a, m.spec
	ls := labelSettings(spec.Label)
	ci := a.st.CloudImage(spec.Label.CloudImage)
	if ci == nil {
		return nil, fmt.Errorf("gce: label %s: unknown cloud image %q", spec.Label.Name, spec.Label.CloudImage)
	}
	image, err := a.imageLink(ctx, ci)
	if err != nil {
		return nil, err
	}
	mt, err := a.machineType(ctx, ls.InstanceType)
	if err != nil {
		return nil, plainNotFound(err)
	}
	md := make(map[string]string, len(spec.Metadata)+1)
	for k, v := range spec.Metadata {
		md[k] = v
	}
	if ci.Key != "" {
		md["ssh-keys"] = ci.Username + ":" + ci.Key
	}
	body := &compute.Instance{
		Name:        spec.Hostname,
		MachineType: mt.SelfLink,
		Disks: []*compute.AttachedDisk{{
			Boot: true, AutoDelete: true,
			InitializeParams: &compute.AttachedDiskInitializeParams{
				SourceImage: image,
				DiskType:    "zones/" + a.st.Zone + "/diskTypes/" + ls.VolumeType,
				DiskSizeGb:  int64(ls.VolumeSize),
			},
		}},
		NetworkInterfaces: []*compute.NetworkInterface{{
			Network:       "global/networks/default",
			AccessConfigs: []*compute.AccessConfig{{Type: "ONE_TO_ONE_NAT", Name: "External NAT"}},
		}},
		ServiceAccounts: []*compute.ServiceAccount{},
		Metadata:        metadataItems(md),
	}
	op, err := a.svc.Instances.Insert(a.st.Project, a.st.Zone, body).Context(ctx).Do()
	if err != nil {
		return nil, plainNotFound(classify(err, "gce: creating instance %s", spec.Hostname))
	}
	a.log.Debug("instance insert accepted", "instance", spec.Hostname, "operation", op.Name)
	return op, nil
}

// plainNotFound turns a not-found error into a plain one: to a create
// machine a missing machine type or image is a failed launch.
func plainNotFound(err error) error {
	if driver.IsNotFound(err) {
		return fmt.Errorf("%s", err.Error())
	}
	return err
}

func labelSettings(l *driver.LabelConfig) *LabelSettings {
	if l != nil {
		if ls, ok := l.Settings.(*LabelSettings); ok && ls != nil {
			return ls
		}
	}
	return &LabelSettings{InstanceType: "", VolumeType: DefaultVolumeType, VolumeSize: DefaultVolumeSize}
}

func metadataItems(md map[string]string) *compute.Metadata {
	keys := make([]string, 0, len(md))
	for k := range md {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	out := &compute.Metadata{}
	for _, k := range keys {
		v := md[k]
		out.Items = append(out.Items, &compute.MetadataItems{Key: k, Value: &v})
	}
	return out
}

// metadata returns an instance's metadata as a map.
func metadata(in *compute.Instance) map[string]string {
	out := map[string]string{}
	if in.Metadata == nil {
		return out
	}
	for _, it := range in.Metadata.Items {
		if it != nil && it.Value != nil {
			out[it.Key] = *it.Value
		}
	}
	return out
}

// instance converts an instance as upstream does: the zone is the AZ and
// the region its prefix, the first interface's address is private_ipv4
// and its first access config's NAT address public_ipv4, and
// interface_ip is the public address if any, else the private one.
func (a *Adapter) instance(ctx context.Context, in *compute.Instance) *driver.Instance {
	zone := path.Base(in.Zone)
	region := zone
	if i := strings.LastIndexByte(zone, '-'); i > 0 {
		region = zone[:i]
	}
	out := &driver.Instance{
		ExternalID: in.Name,
		Cloud:      "Google",
		Region:     region,
		AZ:         zone,
		Metadata:   metadata(in),
		Resources:  a.instanceResources(ctx, in),
	}
	if len(in.NetworkInterfaces) > 0 && in.NetworkInterfaces[0] != nil {
		nic := in.NetworkInterfaces[0]
		out.PrivateIPv4 = nic.NetworkIP
		if len(nic.AccessConfigs) > 0 && nic.AccessConfigs[0] != nil {
			out.PublicIPv4 = nic.AccessConfigs[0].NatIP
		}
	}
	out.InterfaceIP = out.PublicIPv4
	if out.InterfaceIP == "" {
		out.InterfaceIP = out.PrivateIPv4
	}
	return out
}

// instanceResources is what an instance consumes: its machine type's
// guest CPUs and memory and one instance (only the instance when the
// type cannot be looked up).
func (a *Adapter) instanceResources(ctx context.Context, in *compute.Instance) *quota.Resources {
	r := quota.New(0, 1, 0, 0, nil)
	name := path.Base(in.MachineType)
	mt, err := a.machineType(ctx, name)
	if err != nil {
		a.log.Debug("machine type lookup failed; counting the instance only", "instance", in.Name, "machine_type", name, "error", err)
		return &r
	}
	r.Set(quota.Cores, float64(mt.GuestCpus))
	r.Set(quota.RAM, float64(mt.MemoryMb))
	return &r
}
