package azure

import (
	"context"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/compute/armcompute/v6"

	"github.com/nodepool-go/nodepool/driver"
	"github.com/nodepool-go/nodepool/quota"
)

// Resource types of ListResources.
const (
	TypeInstance = "instance"
	TypeNIC      = "nic"
	TypePIP      = "pip"
	TypeDisk     = "disk"
	TypeImage    = "image"
)

// FamilyPrefix prefixes the quota resource of a VM family's cores (e.g.
// "azure-family:standardBSFamily"), reported by QuotaLimits and counted
// by QuotaForLabel so that a family's cores quota pauses the pool too.
const FamilyPrefix = "azure-family:"

// ListInstances returns the resource group's VMs (a listing shared with
// the machines, at most listTTL old) with what each consumes.
func (a *Adapter) ListInstances(ctx context.Context) ([]driver.Instance, error) {
	list, err := a.vmList.get(ctx, time.Time{})
	if err != nil {
		return nil, err
	}
	if err := a.loadSKUs(ctx); err != nil {
		a.log.Warn("listing compute SKUs failed", "error", err)
	}
	out := make([]driver.Instance, 0, len(list))
	for _, vm := range list {
		out = append(out, *vmInstance(vm, a.sku(deref(vmSizeOf(vm)))))
	}
	return out, nil
}

// ListResources returns the VMs, NICs, public IPs, disks and images of
// the resource group that carry nodepool tags.
func (a *Adapter) ListResources(ctx context.Context) ([]driver.Resource, error) {
	now := time.Now()
	var out []driver.Resource
	add := func(typ, plural, name string, tags map[string]*string) {
		md := tagsOf(tags)
		for k := range md {
			if strings.HasPrefix(k, "nodepool_") {
				out = append(out, driver.Resource{Type: typ, Plural: plural, ID: name, Metadata: md})
				return
			}
		}
	}
	vms, err := a.vmList.get(ctx, now)
	if err != nil {
		return nil, err
	}
	for _, x := range vms {
		add(TypeInstance, "instances", deref(x.Name), x.Tags)
	}
	nics, err := a.nicList.get(ctx, now)
	if err != nil {
		return nil, err
	}
	for _, x := range nics {
		add(TypeNIC, "nics", deref(x.Name), x.Tags)
	}
	pips, err := a.pipList.get(ctx, now)
	if err != nil {
		return nil, err
	}
	for _, x := range pips {
		add(TypePIP, "pips", deref(x.Name), x.Tags)
	}
	disks, err := a.diskList.get(ctx, now)
	if err != nil {
		return nil, err
	}
	for _, x := range disks {
		add(TypeDisk, "disks", deref(x.Name), x.Tags)
	}
	images, err := a.imageList.get(ctx, now)
	if err != nil {
		return nil, err
	}
	for _, x := range images {
		add(TypeImage, "images", deref(x.Name), x.Tags)
	}
	return out, nil
}

// DeleteResource starts deleting one leaked resource (what is still
// attached is refused by Azure and retried on a later pass).
func (a *Adapter) DeleteResource(ctx context.Context, r driver.Resource) error {
	a.log.Info("deleting leaked resource", "type", r.Type, "name", r.ID)
	rg := a.st.ResourceGroup
	var err error
	switch r.Type {
	case TypeInstance:
		// The whole node goes, as a node deletion would take it: the OS
		// disk carries no tags and would otherwise never be found.
		go a.deleteInBackground(r.ID)
		return nil
	case TypeNIC:
		_, err = a.nics.BeginDelete(ctx, rg, r.ID, nil)
	case TypePIP:
		_, err = a.pips.BeginDelete(ctx, rg, r.ID, nil)
	case TypeDisk:
		_, err = a.disks.BeginDelete(ctx, rg, r.ID, nil)
	case TypeImage:
		_, err = a.images.BeginDelete(ctx, rg, r.ID, nil)
	default:
		return fmt.Errorf("azure: unknown resource type %q", r.Type)
	}
	return classify(err, "deleting %s %s", r.Type, r.ID)
}

// deleteInBackground runs a delete machine to its end (or until the
// adapter closes).
func (a *Adapter) deleteInBackground(name string) {
	m := a.DeleteMachine(name)
	for a.ctx.Err() == nil {
		done, err := m.Advance(a.ctx)
		if err != nil && !driver.IsTransient(err) {
			a.log.Warn("deleting leaked instance failed", "name", name, "error", err)
			return
		}
		if done {
			return
		}
		select {
		case <-time.After(listTTL / 4):
		case <-a.ctx.Done():
		}
	}
}

// QuotaLimits returns the location's compute usage limits: total
// regional cores, virtual machines and each VM family's cores.
func (a *Adapter) QuotaLimits(ctx context.Context) (quota.Resources, error) {
	usages, err := all(ctx, a.usage.NewListPager(a.st.Location, nil), func(r armcompute.UsageClientListResponse) []*armcompute.Usage { return r.Value })
	if err != nil {
		return quota.Resources{}, classify(err, "listing compute usages of %s", a.st.Location)
	}
	cores, instances := quota.Inf, quota.Inf
	extra := map[string]float64{}
	for _, u := range usages {
		if u.Name == nil || u.Limit == nil {
			continue
		}
		lim := float64(*u.Limit)
		switch name := deref(u.Name.Value); {
		case name == "cores":
			cores = lim
		case name == "virtualMachines":
			instances = lim
		case strings.HasSuffix(strings.ToLower(name), "family"):
			extra[FamilyPrefix+name] = lim
		}
	}
	return quota.New(cores, instances, quota.Inf, quota.Inf, extra), nil
}

// QuotaForLabel returns one node's need: the VM size's vCPUs (also
// counted against its family) and memory, and one instance.
func (a *Adapter) QuotaForLabel(ctx context.Context, label *driver.LabelConfig) (quota.Resources, error) {
	if err := a.loadSKUs(ctx); err != nil {
		return quota.Resources{}, err
	}
	ls, _ := label.Settings.(*LabelSettings)
	if ls == nil {
		return quota.New(0, 1, 0, 0, nil), nil
	}
	return skuQuota(a.sku(ls.VMSize)), nil
}

// skuQuota is what one VM of a size consumes ({instances: 1} for an
// unknown size).
func skuQuota(sku *armcompute.ResourceSKU) quota.Resources {
	r := quota.New(0, 1, 0, 0, nil)
	if sku == nil {
		return r
	}
	for _, c := range sku.Capabilities {
		v, err := strconv.ParseFloat(deref(c.Value), 64)
		if err != nil {
			continue
		}
		switch deref(c.Name) {
		case "vCPUs":
			r.Set(quota.Cores, v)
			if f := deref(sku.Family); f != "" {
				r.Set(FamilyPrefix+f, v)
			}
		case "MemoryGB":
			r.Set(quota.RAM, math.Floor(v*1024))
		}
	}
	return r
}

// sku returns the cached SKU of a VM size in the provider's location
// (nil when unknown or not loaded yet); it never calls the cloud.
func (a *Adapter) sku(name string) *armcompute.ResourceSKU {
	a.skuMu.Lock()
	defer a.skuMu.Unlock()
	return a.skuCache[strings.ToLower(name)]
}

// loadSKUs lists the compute SKUs when the cache is empty or older than
// skuTTL.
func (a *Adapter) loadSKUs(ctx context.Context) error {
	a.skuMu.Lock()
	fresh := a.skuCache != nil && time.Since(a.skuAt) < skuTTL
	a.skuMu.Unlock()
	if fresh {
		return nil
	}
	filter := fmt.Sprintf("location eq '%s'", a.st.Location)
	skus, err := all(ctx, a.skus.NewListPager(&armcompute.ResourceSKUsClientListOptions{Filter: &filter}),
		func(r armcompute.ResourceSKUsClientListResponse) []*armcompute.ResourceSKU { return r.Value })
	if err != nil {
		return classify(err, "listing compute SKUs")
	}
	cache := map[string]*armcompute.ResourceSKU{}
	for _, s := range skus {
		if deref(s.ResourceType) != "" && deref(s.ResourceType) != "virtualMachines" {
			continue
		}
		for _, l := range s.Locations {
			if strings.EqualFold(deref(l), a.st.Location) {
				cache[strings.ToLower(deref(s.Name))] = s
			}
		}
	}
	a.skuMu.Lock()
	a.skuCache, a.skuAt = cache, time.Now()
	a.skuMu.Unlock()
	return nil
}

// LabelReady reports whether a cloud-image label's image-filter matches
// an image; other labels are always ready.
func (a *Adapter) LabelReady(ctx context.Context, label *driver.LabelConfig) bool {
	if label.CloudImage == "" {
		return true
	}
	ci := a.st.CloudImage(label.CloudImage)
	if ci == nil {
		return false
	}
	if ci.ImageFilter == nil {
		return true
	}
	_, err := a.filterImage(ctx, ci.ImageFilter)
	return err == nil
}
