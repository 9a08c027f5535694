package ibmvpc

import (
	"context"
	"fmt"
	"time"

	"github.com/IBM/go-sdk-core/v5/core"
	"github.com/IBM/vpc-go-sdk/vpcv1"

	"github.com/nodepool-go/nodepool/driver"
)

// Steps of a create machine.
const (
	cPrepare    = iota // resolve the image
	cFIP               // create the floating IP (public-ipv4 pools)
	cFIPWait           // until the floating IP is available
	cVM                // create the instance
	cVMWait            // until it is running
	cAttach            // attach the floating IP
	cAttachWait        // until the floating IP shows its target
	cDone
)

// createMachine creates one instance: optionally a floating IP first, then
// the instance, then it attaches the floating IP, as upstream does. Each
// API call runs on the worker pool; polling uses the shared listings. The
// external id is the instance's name (the node's hostname), known before
// anything exists, so that a crash at any step leaves something the
// delete machine finds by name.
type createMachine struct {
	a     *Adapter
	spec  driver.CreateSpec
	state int

	image    vpcv1.ImageIdentityIntf
	fip      *vpcv1.FloatingIP
	vm       *vpcv1.Instance
	since    time.Time // when the last submitted call returned
	prepJob  *future[vpcv1.ImageIdentityIntf]
	fipJob   *future[*vpcv1.FloatingIP]
	vmJob    *future[*vpcv1.Instance]
	fipReady *vpcv1.FloatingIP
	attach   *future[struct{}]
}

// CreateMachine returns a machine that creates one instance.
func (a *Adapter) CreateMachine(spec driver.CreateSpec) driver.CreateMachine {
	return &createMachine{a: a, spec: spec}
}

// ExternalID is the instance name, known from the start.
func (m *createMachine) ExternalID() string { return m.spec.Hostname }

// Advance does one step of the creation.
func (m *createMachine) Advance(ctx context.Context) (*driver.Instance, error) {
	a, ps := m.a, poolSettings(m.spec.Pool)
	switch m.state {
	case cPrepare:
		v, done, err := step(ctx, a, &m.prepJob, m.findImage)
		if !done || err != nil {
			return nil, err
		}
		m.image = v
		m.state = cFIP
		if !ps.PublicIPv4 {
			m.state = cVM
		}
		return nil, nil
	case cFIP:
		v, done, err := step(ctx, a, &m.fipJob, m.createFloatingIP)
		if !done || err != nil {
			return nil, err
		}
		m.fip, m.since, m.state = v, time.Now(), cFIPWait
		return nil, nil
	case cFIPWait:
		fip, err := m.a.findFIP(ctx, deref(m.fip.ID), m.since)
		if err != nil || fip == nil {
			return nil, err
		}
		switch deref(fip.Status) {
		case vpcv1.FloatingIPStatusFailedConst:
			return nil, fmt.Errorf("ibmvpc: floating IP %s failed", m.spec.Hostname)
		case vpcv1.FloatingIPStatusAvailableConst:
			m.fip, m.state = fip, cVM
		}
		return nil, nil
	case cVM:
		v, done, err := step(ctx, a, &m.vmJob, m.createInstance)
		if !done || err != nil {
			return nil, err
		}
		m.vm, m.since, m.state = v, time.Now(), cVMWait
		return nil, nil
	case cVMWait:
		vm, err := m.a.findInstance(ctx, deref(m.vm.ID), m.since)
		if err != nil || vm == nil {
			return nil, err
		}
		switch deref(vm.Status) {
		case vpcv1.InstanceStatusFailedConst:
			return nil, driver.WithMetric(fmt.Errorf("ibmvpc: instance %s is in failed state", m.spec.Hostname), "error.status")
		case vpcv1.InstanceStatusRunningConst:
			m.vm = vm
			m.state = cDone
			if m.fip != nil {
				m.state = cAttach
			}
		}
		if m.state != cDone {
			return nil, nil
		}
	case cAttach:
		if _, done, err := step(ctx, a, &m.attach, m.attachFloatingIP); !done || err != nil {
			return nil, err
		}
		m.since, m.state = time.Now(), cAttachWait
		return nil, nil
	case cAttachWait:
		fip, err := m.a.findFIP(ctx, deref(m.fip.ID), m.since)
		if err != nil || fip == nil {
			return nil, err
		}
		if deref(fip.Status) == vpcv1.FloatingIPStatusFailedConst {
			return nil, fmt.Errorf("ibmvpc: floating IP %s failed", m.spec.Hostname)
		}
		if fip.Target == nil {
			return nil, nil
		}
		m.fip, m.state = fip, cDone
	}
	if m.state != cDone {
		return nil, fmt.Errorf("ibmvpc: create machine in unknown state %d", m.state)
	}
	inst := m.a.instanceOf(m.vm, m.fip)
	if m.spec.Label != nil && m.spec.Label.Diskimage != "" {
		if pd := m.a.cfg.Diskimage(m.spec.Label.Diskimage); pd != nil {
			if ds, ok := pd.Settings.(*DiskimageSettings); ok {
				inst.PythonPath, inst.ShellType = ds.PythonPath, ds.ShellType
			}
		}
	}
	return &inst, nil
}

// findImage resolves the image to boot: the uploaded diskimage, or the
// cloud image's id, href, name or filter.
func (m *createMachine) findImage(ctx context.Context) (vpcv1.ImageIdentityIntf, error) {
	if m.spec.ImageExternalID != "" {
		return &vpcv1.ImageIdentityByID{ID: core.StringPtr(m.spec.ImageExternalID)}, nil
	}
	l := m.spec.Label
	if l == nil || l.CloudImage == "" {
		return nil, fmt.Errorf("ibmvpc: label has no image")
	}
	ci := m.a.st.CloudImage(l.CloudImage)
	if ci == nil {
		return nil, fmt.Errorf("ibmvpc: cloud-image %s is not configured", l.CloudImage)
	}
	switch {
	case ci.ImageID != "":
		return &vpcv1.ImageIdentityByID{ID: core.StringPtr(ci.ImageID)}, nil
	case ci.ImageHref != "":
		return &vpcv1.ImageIdentityByHref{Href: core.StringPtr(ci.ImageHref)}, nil
	}
	images, _, err := m.a.images.Get(ctx)
	if err != nil {
		return nil, err
	}
	for i := range images {
		im := &images[i]
		if (ci.ImageName != "" && deref(im.Name) == ci.ImageName) || (ci.ImageFilter != nil && ci.ImageFilter.matches(im)) {
			return &vpcv1.ImageIdentityByID{ID: im.ID}, nil
		}
	}
	if ci.ImageFilter != nil {
		return nil, fmt.Errorf("ibmvpc: unable to find image matching filter of cloud-image %s", ci.Name)
	}
	return nil, fmt.Errorf("ibmvpc: unable to find image matching name: %s", ci.ImageName)
}

// matches reports whether an image has every attribute of the filter.
// owner-type "user" means the account's own (private) images, "provider"
// IBM's public ones.
func (f *ImageFilter) matches(im *vpcv1.Image) bool {
	if f.Status != "" && deref(im.Status) != f.Status {
		return false
	}
	if f.OwnerType != "" {
		owner := "provider"
		if deref(im.Visibility) == vpcv1.ImageVisibilityPrivateConst {
			owner = "user"
		}
		if owner != f.OwnerType {
			return false
		}
	}
	if len(f.OperatingSystem) == 0 {
		return true
	}
	os := im.OperatingSystem
	if os == nil {
		return false
	}
	attrs := map[string]string{
		"architecture": deref(os.Architecture), "display_name": deref(os.DisplayName),
		"family": deref(os.Family), "href": deref(os.Href), "name": deref(os.Name),
		"vendor": deref(os.Vendor), "version": deref(os.Version),
	}
	if os.DedicatedHostOnly != nil {
		attrs["dedicated_host_only"] = fmt.Sprint(*os.DedicatedHostOnly)
	}
	for k, v := range f.OperatingSystem {
		if attrs[k] != v {
			return false
		}
	}
	return true
}

func (m *createMachine) createFloatingIP(ctx context.Context) (*vpcv1.FloatingIP, error) {
	a, ps := m.a, poolSettings(m.spec.Pool)
	rg, err := a.ensureResourceGroup(ctx, poolGroupName(a.cfg.Name, m.spec.Pool.Name))
	if err != nil {
		return nil, err
	}
	a.log.Debug("creating floating IP", "name", m.spec.Hostname)
	fip, _, err := a.vpc.CreateFloatingIPWithContext(ctx, &vpcv1.CreateFloatingIPOptions{
		FloatingIPPrototype: &vpcv1.FloatingIPPrototypeFloatingIPByZone{
			Name:          core.StringPtr(m.spec.Hostname),
			ResourceGroup: &vpcv1.ResourceGroupIdentityByID{ID: core.StringPtr(rg)},
			Zone:          &vpcv1.ZoneIdentityByName{Name: core.StringPtr(ps.Zone)},
		},
	})
	if err != nil {
		return nil, classify(err, "ibmvpc: creating floating IP %s", m.spec.Hostname)
	}
	a.remember(m.spec.Hostname, "", deref(fip.ID))
	return fip, nil
}

func (m *createMachine) createInstance(ctx context.Context) (*vpcv1.Instance, error) {
	a, ps, ls := m.a, poolSettings(m.spec.Pool), labelSettings(m.spec.Label)
	rg, err := a.ensureResourceGroup(ctx, poolGroupName(a.cfg.Name, m.spec.Pool.Name))
	if err != nil {
		return nil, err
	}
	subnet, ok := a.subnets[ps.Subnet]
	if !ok {
		return nil, fmt.Errorf("ibmvpc: unable to find subnet %s", ps.Subnet)
	}
	var keys []vpcv1.KeyIdentityIntf
	if m.spec.Label != nil {
		if ci := a.st.CloudImage(m.spec.Label.CloudImage); ci != nil {
			for _, k := range ci.Keys {
				id, ok := a.keys[k]
				if !ok {
					return nil, fmt.Errorf("ibmvpc: unable to find key %s", k)
				}
				keys = append(keys, &vpcv1.KeyIdentityByID{ID: core.StringPtr(id)})
			}
		}
	}
	proto := &vpcv1.InstancePrototypeInstanceByImageInstanceByImageInstanceByNetworkInterface{
		Name:          core.StringPtr(m.spec.Hostname),
		Keys:          keys,
		Profile:       &vpcv1.InstanceProfileIdentityByName{Name: core.StringPtr(ls.Profile)},
		ResourceGroup: &vpcv1.ResourceGroupIdentityByID{ID: core.StringPtr(rg)},
		VPC:           &vpcv1.VPCIdentityByID{ID: core.StringPtr(a.vpcID)},
		Image:         m.image,
		Zone:          &vpcv1.ZoneIdentityByName{Name: core.StringPtr(ps.Zone)},
		PrimaryNetworkInterface: &vpcv1.NetworkInterfacePrototype{
			Name:   core.StringPtr("eth0"),
			Subnet: &vpcv1.SubnetIdentityByID{ID: subnet.ID},
		},
		BootVolumeAttachment: &vpcv1.VolumeAttachmentPrototypeInstanceByImageContext{
			DeleteVolumeOnInstanceDelete: core.BoolPtr(true),
			Volume: &vpcv1.VolumePrototypeInstanceByImageContext{
				Name:    core.StringPtr(m.spec.Hostname),
				Profile: &vpcv1.VolumeProfileIdentityByName{Name: core.StringPtr("general-purpose")},
			},
		},
	}
	if ls.UserData != "" {
		proto.UserData = core.StringPtr(ls.UserData)
	}
	a.log.Debug("creating instance", "name", m.spec.Hostname, "profile", ls.Profile)
	vm, _, err := a.vpc.CreateInstanceWithContext(ctx, &vpcv1.CreateInstanceOptions{InstancePrototype: proto})
	if err != nil {
		return nil, classify(err, "ibmvpc: creating instance %s", m.spec.Hostname)
	}
	a.remember(m.spec.Hostname, deref(vm.ID), "")
	return vm, nil
}

func (m *createMachine) attachFloatingIP(ctx context.Context) (struct{}, error) {
	if m.vm.PrimaryNetworkInterface == nil {
		return struct{}{}, fmt.Errorf("ibmvpc: instance %s has no primary network interface", m.spec.Hostname)
	}
	m.a.log.Debug("attaching floating IP", "name", m.spec.Hostname)
	_, _, err := m.a.vpc.AddInstanceNetworkInterfaceFloatingIPWithContext(ctx, &vpcv1.AddInstanceNetworkInterfaceFloatingIPOptions{
		InstanceID:         m.vm.ID,
		NetworkInterfaceID: m.vm.PrimaryNetworkInterface.ID,
		ID:                 m.fip.ID,
	})
	return struct{}{}, classify(err, "ibmvpc: attaching floating IP to %s", m.spec.Hostname)
}

// remember records the id of something created under name.
func (a *Adapter) remember(name, instance, fip string) {
	v, _ := a.created.LoadOrStore(name, &createdIDs{})
	c := v.(*createdIDs)
	c.mu.Lock()
	defer c.mu.Unlock()
	if instance != "" {
		c.instance = instance
	}
	if fip != "" {
		c.fip = fip
	}
}

// findInstance returns the instance with the given id from a listing that
// started after since; nil while there is none yet or it is not listed.
func (a *Adapter) findInstance(ctx context.Context, id string, since time.Time) (*vpcv1.Instance, error) {
	list, _, ok, err := a.instances.Fresh(ctx, since)
	if err != nil || !ok {
		return nil, transientList(err)
	}
	for i := range list {
		if deref(list[i].ID) == id {
			return &list[i], nil
		}
	}
	return nil, nil
}

// findFIP returns the floating IP with the given id from a listing that
// started after since.
func (a *Adapter) findFIP(ctx context.Context, id string, since time.Time) (*vpcv1.FloatingIP, error) {
	list, _, ok, err := a.fips.Fresh(ctx, since)
	if err != nil || !ok {
		return nil, transientList(err)
	}
	for i := range list {
		if deref(list[i].ID) == id {
			return &list[i], nil
		}
	}
	return nil, nil
}

// transientList makes a failed listing transient for the machine polling
// it: the next Advance polls again.
func transientList(err error) error {
	if err == nil || driver.KindOf(err) != driver.KindUnknown {
		return err
	}
	return driver.TransientError("%w", err)
}
