package ibmvpc

import (
	"context"
	"fmt"
	"regexp"

	"github.com/IBM/vpc-go-sdk/vpcv1"

	"github.com/nodepool-go/nodepool/driver"
	"github.com/nodepool-go/nodepool/quota"
)

// Resource types of ListResources.
const (
	TypeInstance   = "instance"
	TypeFloatingIP = "floatingip"
	TypeImage      = "image"
	TypeObject     = "object"
)

var (
	hostnameRE   = regexp.MustCompile(`^np([0-9]+)$`)
	uploadRE     = regexp.MustCompile(`^npimage([0-9]+)(?:-([0-9a-f]{32}))?`)
	poolGroupRE  = regexp.MustCompile(`^np_([A-Za-z0-9-]+)_([A-Za-z0-9-]+)$`)
	imageGroupRE = regexp.MustCompile(`^npimages_([A-Za-z0-9-]+)$`)
)

// metadataOf derives the ownership metadata of a cloud object from its
// name (node id, or upload and build id) and its resource group (provider
// and pool).
func metadataOf(group, name string) map[string]string {
	md := map[string]string{}
	if m := hostnameRE.FindStringSubmatch(name); m != nil {
		md[driver.MetaNodeID] = m[1]
	} else if m := uploadRE.FindStringSubmatch(name); m != nil {
		md[driver.MetaUploadID] = m[1]
		if m[2] != "" {
			md[driver.MetaBuildID] = m[2]
		}
	}
	if m := poolGroupRE.FindStringSubmatch(group); m != nil {
		md[driver.MetaProviderName] = m[1]
		md[driver.MetaPoolName] = m[2]
	} else if m := imageGroupRE.FindStringSubmatch(group); m != nil {
		md[driver.MetaProviderName] = m[1]
	}
	return md
}

// instanceOf turns a listed instance (and its attached floating IP, if
// any) into the driver's view.
func (a *Adapter) instanceOf(vm *vpcv1.Instance, fip *vpcv1.FloatingIP) driver.Instance {
	inst := driver.Instance{
		ExternalID: deref(vm.Name),
		Cloud:      "IBM",
		Region:     a.st.Region,
		AZ:         zoneName(vm.Zone),
		Metadata:   metadataOf(a.groupName(vm.ResourceGroup), deref(vm.Name)),
	}
	if ni := vm.PrimaryNetworkInterface; ni != nil && ni.PrimaryIP != nil {
		inst.PrivateIPv4 = deref(ni.PrimaryIP.Address)
	}
	if fip != nil {
		inst.PublicIPv4 = deref(fip.Address)
	}
	inst.InterfaceIP = inst.PublicIPv4
	if inst.InterfaceIP == "" {
		inst.InterfaceIP = inst.PrivateIPv4
	}
	if vm.Profile != nil {
		r := a.profileQuota(deref(vm.Profile.Name))
		inst.Resources = &r
	}
	return inst
}

// profileQuota is what one instance of a profile costs; an unknown
// profile costs one instance.
func (a *Adapter) profileQuota(name string) quota.Resources {
	a.setupMu.Lock()
	p, ok := a.prof[name]
	a.setupMu.Unlock()
	if !ok {
		return quota.New(0, 1, 0, 0, nil)
	}
	return quota.New(p.cores, 1, p.ram, 0, nil)
}

// ListInstances lists every instance of the account, with the floating IP
// attached to its primary interface.
func (a *Adapter) ListInstances(ctx context.Context) ([]driver.Instance, error) {
	if err := a.setupNow(ctx); err != nil {
		return nil, err
	}
	vms, _, err := a.instances.Get(ctx)
	if err != nil {
		return nil, err
	}
	fips, _, err := a.fips.Get(ctx)
	if err != nil {
		return nil, err
	}
	byName := map[string]*vpcv1.FloatingIP{}
	for i := range fips {
		byName[deref(fips[i].Name)] = &fips[i]
	}
	out := make([]driver.Instance, 0, len(vms))
	for i := range vms {
		vm := &vms[i]
		fip := byName[deref(vm.Name)]
		if fip != nil && (vm.PrimaryNetworkInterface == nil || targetID(fip) != deref(vm.PrimaryNetworkInterface.ID)) {
			fip = nil
		}
		out = append(out, a.instanceOf(vm, fip))
	}
	return out, nil
}

func targetID(f *vpcv1.FloatingIP) string {
	if t, ok := f.Target.(*vpcv1.FloatingIPTarget); ok && t != nil {
		return deref(t.ID)
	}
	return ""
}

// setupNow runs the one-time setup on the caller's goroutine.
func (a *Adapter) setupNow(ctx context.Context) error { return a.setup(ctx) }

// ListResources lists the instances, floating IPs, private images and
// staged objects carrying ownership metadata.
func (a *Adapter) ListResources(ctx context.Context) ([]driver.Resource, error) {
	if err := a.setupNow(ctx); err != nil {
		return nil, err
	}
	if err := a.refreshResourceGroups(ctx); err != nil {
		return nil, err
	}
	var out []driver.Resource
	add := func(typ, id, group, name string) {
		md := metadataOf(group, name)
		if md[driver.MetaProviderName] == "" {
			return
		}
		out = append(out, driver.Resource{Type: typ, ID: id, Metadata: md})
	}
	vms, err := a.instances.Refresh(ctx)
	if err != nil {
		return nil, err
	}
	for _, vm := range vms {
		add(TypeInstance, deref(vm.ID), a.groupName(vm.ResourceGroup), deref(vm.Name))
	}
	fips, err := a.fips.Refresh(ctx)
	if err != nil {
		return nil, err
	}
	for _, f := range fips {
		add(TypeFloatingIP, deref(f.ID), a.groupName(f.ResourceGroup), deref(f.Name))
	}
	images, err := a.images.Refresh(ctx)
	if err != nil {
		return nil, err
	}
	for _, im := range images {
		if deref(im.Visibility) != vpcv1.ImageVisibilityPrivateConst {
			continue
		}
		add(TypeImage, deref(im.ID), a.groupName(im.ResourceGroup), deref(im.Name))
	}
	a.rgMu.Lock()
	_, haveImageGroup := a.rgs[imageGroupName(a.cfg.Name)]
	a.rgMu.Unlock()
	if a.st.ObjectStorage != nil && haveImageGroup {
		keys, err := a.listObjects(ctx, "")
		if err != nil {
			// The bucket may not exist (yet): nothing staged to clean.
			a.log.Debug("listing staged objects failed", "error", err)
		}
		for _, k := range keys {
			add(TypeObject, k, imageGroupName(a.cfg.Name), k)
		}
	}
	return out, nil
}

// DeleteResource deletes one listed resource.
func (a *Adapter) DeleteResource(ctx context.Context, r driver.Resource) error {
	a.log.Info("deleting leaked resource", "type", r.Type, "id", r.ID)
	var err error
	switch r.Type {
	case TypeInstance:
		_, err = a.vpc.DeleteInstanceWithContext(ctx, &vpcv1.DeleteInstanceOptions{ID: &r.ID})
	case TypeFloatingIP:
		_, err = a.vpc.DeleteFloatingIPWithContext(ctx, &vpcv1.DeleteFloatingIPOptions{ID: &r.ID})
	case TypeImage:
		_, err = a.vpc.DeleteImageWithContext(ctx, &vpcv1.DeleteImageOptions{ID: &r.ID})
	case TypeObject:
		return a.deleteObject(ctx, r.ID)
	default:
		return fmt.Errorf("ibmvpc: unknown resource type %s", r.Type)
	}
	return classify(err, "ibmvpc: deleting %s %s", r.Type, r.ID)
}

// QuotaLimits returns the provider's quota key: the cloud reports no
// limits through its API.
func (a *Adapter) QuotaLimits(ctx context.Context) (quota.Resources, error) {
	lim := func(v *int) float64 {
		if v == nil {
			return quota.Inf
		}
		return float64(*v)
	}
	q := a.st.Quota
	return quota.New(lim(q.Cores), lim(q.Instances), lim(q.RAM), quota.Inf, nil), nil
}

// QuotaForLabel returns the vCPUs and memory of the label's profile and
// one instance.
func (a *Adapter) QuotaForLabel(ctx context.Context, label *driver.LabelConfig) (quota.Resources, error) {
	if err := a.setupNow(ctx); err != nil {
		return quota.Resources{}, err
	}
	return a.profileQuota(labelSettings(label).Profile), nil
}
