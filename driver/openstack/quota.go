package openstack

import (
	"context"

	blimits "github.com/gophercloud/gophercloud/v2/openstack/blockstorage/v3/limits"
	"github.com/gophercloud/gophercloud/v2/openstack/compute/v2/limits"

	"github.com/nodepool-go/nodepool/driver"
	"github.com/nodepool-go/nodepool/quota"
)

func limit(v int) float64 {
	if v < 0 {
		return quota.Inf
	}
	return float64(v)
}

// QuotaLimits returns Nova's maxTotalInstances/Cores/RAMSize and, when the
// cloud has a volume service, Cinder's maxTotalVolumes and
// maxTotalVolumeGigabytes (-1 = unlimited). Resources the cloud does not
// report are limited to 0.
func (a *Adapter) QuotaLimits(ctx context.Context) (quota.Resources, error) {
	cl, err := a.clients(ctx)
	if err != nil {
		return quota.Resources{}, err
	}
	l, err := limits.Get(ctx, cl.compute, limits.GetOpts{}).Extract()
	if err != nil {
		return quota.Resources{}, classify(err, "openstack: getting compute limits")
	}
	abs := l.Absolute
	extra := map[string]float64{}
	if cl.volume != nil {
		vl, err := blimits.Get(ctx, cl.volume).Extract()
		if err != nil {
			a.log.Warn("getting volume limits failed", "error", err)
		} else {
			extra[quota.Volumes] = limit(vl.Absolute.MaxTotalVolumes)
			extra[quota.VolumeGB] = limit(vl.Absolute.MaxTotalVolumeGigabytes)
		}
	}
	return quota.New(limit(abs.MaxTotalCores), limit(abs.MaxTotalInstances), limit(abs.MaxTotalRAMSize), 0, extra), nil
}

// QuotaForLabel returns one node's need: the flavor's vCPUs and RAM, one
// instance, plus one volume of volume-size GB when booting from volume.
func (a *Adapter) QuotaForLabel(ctx context.Context, label *driver.LabelConfig) (quota.Resources, error) {
	f, err := a.labelFlavor(ctx, label)
	if err != nil {
		return quota.Resources{}, err
	}
	r := quota.New(float64(f.VCPUs), 1, float64(f.RAM), 0, nil)
	if ls := labelSettings(label); ls.BootFromVolume {
		r.Set(quota.Volumes, 1)
		r.Set(quota.VolumeGB, float64(ls.VolumeSize))
	}
	return r, nil
}
