package azure

import (
	"context"
	"fmt"
	"maps"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/runtime"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/compute/armcompute/v6"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/network/armnetwork/v7"

	"github.com/nodepool-go/nodepool/driver"
	"github.com/nodepool-go/nodepool/driver/internal/cloudutil"
)

// Create machine states.
const (
	csStart      = "start"
	csPIPSubmit  = "creating public ips"
	csPIPWait    = "waiting for public ips"
	csNICSubmit  = "creating nic"
	csNICWait    = "waiting for nic"
	csVMSubmit   = "creating vm"
	csVMWait     = "waiting for vm"
	csVMFailed   = "vm failed"
	csAddrWait   = "querying addresses"
	csComplete   = "complete"
	csFailedDone = "failed"
)

// CreateMachine returns a machine creating one VM with its public IPs
// and NIC; the VM's name (the node's hostname) is its external id.
func (a *Adapter) CreateMachine(spec driver.CreateSpec) driver.CreateMachine {
	return &createMachine{a: a, spec: spec, state: csStart}
}

type createMachine struct {
	a    *Adapter
	spec driver.CreateSpec

	mu       sync.Mutex
	state    string
	id       string
	tags     map[string]string
	job      *future[any]
	since    time.Time // when the step's write was accepted
	pips     map[string]*armnetwork.PublicIPAddress
	nic      *armnetwork.Interface
	vm       *armcompute.VirtualMachine
	poller   *runtime.Poller[armcompute.VirtualMachinesClientCreateOrUpdateResponse]
	subnetID string
}

// ExternalID returns the VM name once the first resource is submitted.
func (m *createMachine) ExternalID() string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.id
}

func (m *createMachine) pool() *PoolSettings {
	if ps, ok := m.spec.Pool.Settings.(*PoolSettings); ok {
		return ps
	}
	return &PoolSettings{IPv4: true}
}

func (m *createMachine) label() *LabelSettings {
	if ls, ok := m.spec.Label.Settings.(*LabelSettings); ok {
		return ls
	}
	return &LabelSettings{}
}

// step runs fn on a worker, or returns its result once done; transient
// failures leave the state as it is so the next Advance submits again.
func (m *createMachine) step(fn func(ctx context.Context) (any, error)) (any, bool, error) {
	if m.job == nil {
		m.job = run(m.a, fn)
	}
	v, err, done := m.job.ready()
	if !done {
		return nil, false, nil
	}
	m.job = nil
	if err != nil {
		return nil, false, err
	}
	return v, true, nil
}

// Advance does one small step; calls run on the adapter's workers and
// progress is read from the shared listings.
func (m *createMachine) Advance(ctx context.Context) (*driver.Instance, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	switch m.state {
	case csStart:
		// The setup runs once per adapter on its own worker; machines do
		// not hold a worker while waiting for it.
		v, err, done := m.a.ensureSetup().ready()
		if !done || err != nil {
			return nil, err
		}
		m.subnetID = v
		m.tags = m.makeTags()
		m.id = m.spec.Hostname
		m.state = csPIPSubmit
		return nil, nil
	case csPIPSubmit:
		if len(m.pipNames()) == 0 {
			m.state = csNICSubmit
			return nil, nil
		}
		_, ok, err := m.step(m.createPIPs)
		if !ok {
			return nil, err
		}
		m.since, m.state = time.Now(), csPIPWait
	case csPIPWait:
		list, ok, err := m.a.pipList.fresh(m.since)
		if !ok {
			return nil, transientList(err)
		}
		m.pips = map[string]*armnetwork.PublicIPAddress{}
		for version, name := range m.pipNames() {
			p, found := byName(list, name, pipName)
			if !found || p.Properties == nil {
				return nil, nil
			}
			switch deref(p.Properties.ProvisioningState) {
			case armnetwork.ProvisioningStateFailed:
				return nil, fmt.Errorf("azure: public IP address %s failed to provision", name)
			case armnetwork.ProvisioningStateSucceeded:
			default:
				return nil, nil
			}
			m.pips[version] = p
		}
		m.state = csNICSubmit
	case csNICSubmit:
		_, ok, err := m.step(m.createNIC)
		if !ok {
			return nil, err
		}
		m.since, m.state = time.Now(), csNICWait
	case csNICWait:
		list, ok, err := m.a.nicList.fresh(m.since)
		if !ok {
			return nil, transientList(err)
		}
		n, found := byName(list, m.spec.Hostname+"-nic", nicName)
		if !found || n.Properties == nil {
			return nil, nil
		}
		switch deref(n.Properties.ProvisioningState) {
		case armnetwork.ProvisioningStateFailed:
			return nil, fmt.Errorf("azure: network interface %s failed to provision", deref(n.Name))
		case armnetwork.ProvisioningStateSucceeded:
		default:
			return nil, nil
		}
		m.nic, m.state = n, csVMSubmit
	case csVMSubmit:
		_, ok, err := m.step(m.createVM)
		if !ok {
			return nil, err
		}
		m.since, m.state = time.Now(), csVMWait
	case csVMWait:
		list, ok, err := m.a.vmList.fresh(m.since)
		if !ok {
			return nil, transientList(err)
		}
		vm, found := byName(list, m.spec.Hostname, vmName)
		if !found || vm.Properties == nil {
			return nil, nil
		}
		switch deref(vm.Properties.ProvisioningState) {
		case "Succeeded":
			m.vm, m.since, m.state = vm, time.Now(), csAddrWait
			return nil, nil
		case "Failed":
			m.state = csVMFailed
		default:
			return nil, nil
		}
		fallthrough
	case csVMFailed:
		// The asynchronous operation holds the reason (e.g. no capacity).
		_, ok, err := m.step(func(ctx context.Context) (any, error) {
			if m.poller == nil {
				return nil, fmt.Errorf("azure: VM %s in failed state", m.spec.Hostname)
			}
			_, err := m.poller.PollUntilDone(ctx, &runtime.PollUntilDoneOptions{Frequency: pollFrequency})
			if err == nil {
				return nil, fmt.Errorf("azure: VM %s in failed state", m.spec.Hostname)
			}
			return nil, classify(err, "creating VM %s", m.spec.Hostname)
		})
		if !ok && err == nil {
			return nil, nil
		}
		if err == nil {
			err = fmt.Errorf("azure: VM %s in failed state", m.spec.Hostname)
		}
		if driver.IsTransient(err) {
			return nil, err
		}
		m.state = csFailedDone
		if driver.KindOf(err) == driver.KindUnknown {
			err = driver.WithMetric(err, "error.status")
		}
		return nil, err
	case csAddrWait:
		// Dynamic public addresses are only allocated once the VM runs:
		// read the NIC and the public IPs again from listings made after.
		return m.addresses()
	case csComplete:
		return m.instance(), nil
	default:
		return nil, fmt.Errorf("azure: create machine for %s already failed", m.spec.Hostname)
	}
	return nil, nil
}

// addresses completes the machine once the NIC has its private addresses
// and every public IP its address.
func (m *createMachine) addresses() (*driver.Instance, error) {
	nics, ok, err := m.a.nicList.fresh(m.since)
	if !ok {
		return nil, transientList(err)
	}
	pips := []*armnetwork.PublicIPAddress{}
	if len(m.pips) > 0 {
		if pips, ok, err = m.a.pipList.fresh(m.since); !ok {
			return nil, transientList(err)
		}
	}
	n, found := byName(nics, m.spec.Hostname+"-nic", nicName)
	if !found || n.Properties == nil {
		return nil, nil
	}
	for _, c := range n.Properties.IPConfigurations {
		if c.Properties == nil || deref(c.Properties.PrivateIPAddress) == "" {
			return nil, nil
		}
	}
	got := map[string]*armnetwork.PublicIPAddress{}
	for version, p := range m.pips {
		q, found := byName(pips, deref(p.Name), pipName)
		if !found || q.Properties == nil || deref(q.Properties.IPAddress) == "" {
			return nil, nil
		}
		got[version] = q
	}
	m.nic, m.pips, m.state = n, got, csComplete
	return m.instance(), nil
}

// transientList reports a failed shared listing as transient.
func transientList(err error) error {
	if err == nil || driver.IsTransient(err) {
		return err
	}
	return driver.TransientError("%w", err)
}

// makeTags returns the label's tags, its dynamic tags formatted with the
// request, and the ownership metadata (which wins).
func (m *createMachine) makeTags() map[string]string {
	ls := m.label()
	tags := maps.Clone(ls.Tags)
	if tags == nil {
		tags = map[string]string{}
	}
	for _, k := range sortedKeys(ls.DynamicTags) {
		v, err := cloudutil.FormatRequest(ls.DynamicTags[k], m.spec.Request)
		if err != nil {
			m.a.log.Warn("error formatting dynamic tag", "tag", k, "error", err)
			continue
		}
		tags[k] = v
	}
	maps.Copy(tags, m.spec.Metadata)
	return tags
}

// pipNames maps the IP versions of the pool's public addresses to their
// resource names.
func (m *createMachine) pipNames() map[string]string {
	out := map[string]string{}
	ps := m.pool()
	if ps.PublicIPv4 {
		out["IPv4"] = m.spec.Hostname + "-pip-IPv4"
	}
	if ps.PublicIPv6 {
		out["IPv6"] = m.spec.Hostname + "-pip-IPv6"
	}
	return out
}

func (m *createMachine) createPIPs(ctx context.Context) (any, error) {
	// Basic and Standard SKUs cannot be mixed on one NIC, and Standard
	// only allocates statically: with IPv6 everything is Standard/static,
	// otherwise Basic/dynamic (cheaper and faster).
	sku, method := armnetwork.PublicIPAddressSKUNameBasic, armnetwork.IPAllocationMethodDynamic
	if m.pool().IPv6 {
		sku, method = armnetwork.PublicIPAddressSKUNameStandard, armnetwork.IPAllocationMethodStatic
	}
	names := m.pipNames()
	versions := make([]string, 0, len(names))
	for v := range names {
		versions = append(versions, v)
	}
	sort.Strings(versions)
	for _, v := range versions {
		_, err := m.a.pips.BeginCreateOrUpdate(ctx, m.a.st.ResourceGroup, names[v], armnetwork.PublicIPAddress{
			Location: &m.a.st.Location,
			Tags:     azTags(m.tags),
			SKU:      &armnetwork.PublicIPAddressSKU{Name: ptr(sku)},
			Properties: &armnetwork.PublicIPAddressPropertiesFormat{
				PublicIPAddressVersion:   ptr(armnetwork.IPVersion(v)),
				PublicIPAllocationMethod: ptr(method),
			},
		}, nil)
		if err != nil {
			return nil, classify(err, "creating public IP address %s", names[v])
		}
	}
	return nil, nil
}

func (m *createMachine) createNIC(ctx context.Context) (any, error) {
	ps := m.pool()
	conf := func(name, version string) *armnetwork.InterfaceIPConfiguration {
		c := &armnetwork.InterfaceIPConfiguration{Name: ptr(name), Properties: &armnetwork.InterfaceIPConfigurationPropertiesFormat{
			PrivateIPAddressVersion: ptr(armnetwork.IPVersion(version)),
			Subnet:                  &armnetwork.Subnet{ID: &m.subnetID},
		}}
		if p := m.pips[version]; p != nil {
			c.Properties.PublicIPAddress = &armnetwork.PublicIPAddress{ID: p.ID}
		}
		return c
	}
	var cfgs []*armnetwork.InterfaceIPConfiguration
	if ps.IPv4 {
		cfgs = append(cfgs, conf("nodepool-v4-ip-config", "IPv4"))
	}
	if ps.IPv6 {
		cfgs = append(cfgs, conf("nodepool-v6-ip-config", "IPv6"))
	}
	name := m.spec.Hostname + "-nic"
	_, err := m.a.nics.BeginCreateOrUpdate(ctx, m.a.st.ResourceGroup, name, armnetwork.Interface{
		Location:   &m.a.st.Location,
		Tags:       azTags(m.tags),
		Properties: &armnetwork.InterfacePropertiesFormat{IPConfigurations: cfgs},
	}, nil)
	return nil, classify(err, "creating network interface %s", name)
}

// imageSource is what a VM boots and who logs in.
type imageSource struct {
	ref              *armcompute.ImageReference
	username         string
	password         string
	generatePassword bool
	key              string
}

func (m *createMachine) source(ctx context.Context) (*imageSource, error) {
	l := m.spec.Label
	if m.spec.ImageExternalID != "" {
		id, err := m.a.imageID(ctx, m.spec.ImageExternalID)
		if err != nil {
			return nil, err
		}
		src := &imageSource{ref: &armcompute.ImageReference{ID: &id}, username: l.Username}
		if d := m.a.cfg.Diskimage(l.Diskimage); d != nil {
			if ds, ok := d.Settings.(*DiskimageSettings); ok {
				src.password, src.generatePassword, src.key = ds.Password, ds.GeneratePassword, ds.Key
			}
		}
		return src, nil
	}
	ci := m.a.st.CloudImage(l.CloudImage)
	if ci == nil {
		return nil, fmt.Errorf("azure: label %s: no cloud image %q", l.Name, l.CloudImage)
	}
	src := &imageSource{username: ci.Username, password: ci.Password, generatePassword: ci.GeneratePassword, key: ci.Key}
	switch {
	case ci.ImageReference != nil:
		r := ci.ImageReference
		src.ref = &armcompute.ImageReference{Publisher: &r.Publisher, Offer: &r.Offer, SKU: &r.SKU, Version: &r.Version}
	case ci.ImageID != "":
		src.ref = &armcompute.ImageReference{ID: &ci.ImageID}
	case ci.ImageFilter != nil:
		img, err := m.a.filterImage(ctx, ci.ImageFilter)
		if err != nil {
			return nil, err
		}
		src.ref = &armcompute.ImageReference{ID: img.ID}
	}
	return src, nil
}

func (m *createMachine) createVM(ctx context.Context) (any, error) {
	src, err := m.source(ctx)
	if err != nil {
		return nil, err
	}
	ls := m.label()
	osp := &armcompute.OSProfile{ComputerName: &m.spec.Hostname}
	if src.key != "" {
		osp.LinuxConfiguration = &armcompute.LinuxConfiguration{
			DisablePasswordAuthentication: ptr(true),
			SSH: &armcompute.SSHConfiguration{PublicKeys: []*armcompute.SSHPublicKey{{
				Path: ptr("/home/" + src.username + "/.ssh/authorized_keys"), KeyData: &src.key,
			}}},
		}
	}
	if src.username != "" {
		osp.AdminUsername = &src.username
	}
	switch {
	case src.password != "":
		osp.AdminPassword = &src.password
	case src.generatePassword:
		osp.AdminPassword = ptr(generatePassword())
	}
	if ls.CustomData != "" {
		osp.CustomData = &ls.CustomData
	}
	vm := armcompute.VirtualMachine{
		Location: &m.a.st.Location,
		Tags:     azTags(m.tags),
		Properties: &armcompute.VirtualMachineProperties{
			OSProfile:       osp,
			HardwareProfile: &armcompute.HardwareProfile{VMSize: ptr(armcompute.VirtualMachineSizeTypes(ls.VMSize))},
			StorageProfile:  &armcompute.StorageProfile{ImageReference: src.ref},
			NetworkProfile: &armcompute.NetworkProfile{NetworkInterfaces: []*armcompute.NetworkInterfaceReference{{
				ID: m.nic.ID, Properties: &armcompute.NetworkInterfaceReferenceProperties{Primary: ptr(true)},
			}}},
		},
	}
	if ls.UserData != "" {
		vm.Properties.UserData = &ls.UserData
	}
	p, err := m.a.vms.BeginCreateOrUpdate(ctx, m.a.st.ResourceGroup, m.spec.Hostname, vm, nil)
	if err != nil {
		return nil, classify(err, "creating VM %s", m.spec.Hostname)
	}
	m.poller = p
	return nil, nil
}

// instance builds the node's view of the finished VM.
func (m *createMachine) instance() *driver.Instance {
	inst := vmInstance(m.vm, m.a.sku(deref(vmSizeOf(m.vm))))
	for _, c := range m.nic.Properties.IPConfigurations {
		switch deref(c.Properties.PrivateIPAddressVersion) {
		case armnetwork.IPVersionIPv4:
			inst.PrivateIPv4 = deref(c.Properties.PrivateIPAddress)
		case armnetwork.IPVersionIPv6:
			inst.PrivateIPv6 = deref(c.Properties.PrivateIPAddress)
		}
	}
	if p := m.pips["IPv4"]; p != nil {
		inst.PublicIPv4 = deref(p.Properties.IPAddress)
	}
	if p := m.pips["IPv6"]; p != nil {
		inst.PublicIPv6 = deref(p.Properties.IPAddress)
	}
	inst.InterfaceIP = firstNonEmpty(inst.PublicIPv4, inst.PublicIPv6, inst.PrivateIPv4, inst.PrivateIPv6)
	return inst
}

func firstNonEmpty(v ...string) string {
	for _, s := range v {
		if s != "" {
			return s
		}
	}
	return ""
}

func vmSizeOf(vm *armcompute.VirtualMachine) *string {
	if vm.Properties == nil || vm.Properties.HardwareProfile == nil || vm.Properties.HardwareProfile.VMSize == nil {
		return nil
	}
	return ptr(string(*vm.Properties.HardwareProfile.VMSize))
}

// vmInstance is the instance of a listed VM (without addresses).
func vmInstance(vm *armcompute.VirtualMachine, sku *armcompute.ResourceSKU) *driver.Instance {
	inst := &driver.Instance{
		ExternalID: deref(vm.Name),
		Metadata:   tagsOf(vm.Tags),
		Cloud:      "Azure",
		Region:     deref(vm.Location),
	}
	if len(vm.Zones) > 0 {
		inst.AZ = deref(vm.Zones[0])
	}
	r := skuQuota(sku)
	inst.Resources = &r
	return inst
}

// imageID returns the resource id of an uploaded image by name (cached:
// images do not move).
func (a *Adapter) imageID(ctx context.Context, name string) (string, error) {
	if v, ok := a.imageIDs.Load(name); ok {
		return v.(string), nil
	}
	img, err := a.images.Get(ctx, a.st.ResourceGroup, name, nil)
	if err != nil {
		return "", classify(err, "getting image %s", name)
	}
	a.imageIDs.Store(name, deref(img.ID))
	return deref(img.ID), nil
}

// filterImage returns the last (by name) succeeded image of the resource
// group matching an image-filter.
func (a *Adapter) filterImage(ctx context.Context, f *ImageFilter) (*armcompute.Image, error) {
	list, err := a.imageList.get(ctx, time.Time{})
	if err != nil {
		return nil, err
	}
	var match []*armcompute.Image
	for _, img := range list {
		if img.Properties == nil || deref(img.Properties.ProvisioningState) != "Succeeded" {
			continue
		}
		if f.Name != "" && deref(img.Name) != f.Name {
			continue
		}
		if f.Location != "" && !strings.EqualFold(deref(img.Location), f.Location) {
			continue
		}
		ok := true
		for k, v := range f.Tags {
			if img.Tags[k] == nil || *img.Tags[k] != v {
				ok = false
			}
		}
		if ok {
			match = append(match, img)
		}
	}
	if len(match) == 0 {
		return nil, fmt.Errorf("azure: unable to find image matching filter (name %q, location %q, tags %v)", f.Name, f.Location, f.Tags)
	}
	sort.Slice(match, func(i, j int) bool { return deref(match[i].Name) < deref(match[j].Name) })
	return match[len(match)-1], nil
}
