package gce

import (
	"context"

	"github.com/nodepool-go/nodepool/driver"
	"github.com/nodepool-go/nodepool/quota"
)

// TypeInstance is the only resource type the driver lists.
const TypeInstance = "instance"

// ListInstances returns every instance of the zone (from the shared
// listing) with what it consumes.
func (a *Adapter) ListInstances(ctx context.Context) ([]driver.Instance, error) {
	list, _, err := a.instances.Get(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]driver.Instance, 0, len(list))
	for _, in := range list {
		out = append(out, *a.instance(ctx, in))
	}
	return out, nil
}

// ListResources returns the zone's instances that are not TERMINATED,
// with their metadata, from a listing made now.
func (a *Adapter) ListResources(ctx context.Context) ([]driver.Resource, error) {
	list, err := a.instances.Refresh(ctx)
	if err != nil {
		return nil, err
	}
	var out []driver.Resource
	for _, in := range list {
		if in.Status == "TERMINATED" {
			continue
		}
		out = append(out, driver.Resource{Type: TypeInstance, ID: in.Name, Metadata: metadata(in)})
	}
	return out, nil
}

// DeleteResource deletes a leaked instance; a deletion already under way
// counts as done.
func (a *Adapter) DeleteResource(ctx context.Context, r driver.Resource) error {
	a.log.Info("deleting leaked resource", "type", r.Type, "id", r.ID)
	_, err := a.deleteInstance(ctx, r.ID)
	if isNotReady(err) {
		return nil
	}
	return err
}

// QuotaLimits returns the region's CPUS and INSTANCES quotas; every other
// resource is unlimited.
func (a *Adapter) QuotaLimits(ctx context.Context) (quota.Resources, error) {
	reg, err := a.svc.Regions.Get(a.st.Project, a.st.Region).Context(ctx).Do()
	if err != nil {
		return quota.Resources{}, classify(err, "gce: getting region %s", a.st.Region)
	}
	cores, instances := quota.Inf, quota.Inf
	for _, q := range reg.Quotas {
		switch q.Metric {
		case "CPUS":
			cores = q.Limit
		case "INSTANCES":
			instances = q.Limit
		}
	}
	return quota.New(cores, instances, quota.Inf, quota.Inf, nil), nil
}

// QuotaForLabel returns one node's need: its machine type's guest CPUs
// and memory, and one instance.
func (a *Adapter) QuotaForLabel(ctx context.Context, label *driver.LabelConfig) (quota.Resources, error) {
	mt, err := a.machineType(ctx, labelSettings(label).InstanceType)
	if err != nil {
		return quota.Resources{}, err
	}
	return quota.New(float64(mt.GuestCpus), 1, float64(mt.MemoryMb), 0, nil), nil
}
