package openstack

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/gophercloud/gophercloud/v2/openstack/blockstorage/v3/volumes"
	"github.com/gophercloud/gophercloud/v2/openstack/compute/v2/servers"
	"github.com/gophercloud/gophercloud/v2/openstack/image/v2/images"
	"github.com/gophercloud/gophercloud/v2/openstack/networking/v2/extensions/layer3/floatingips"
	"github.com/gophercloud/gophercloud/v2/openstack/networking/v2/ports"

	"github.com/nodepool-go/nodepool/driver"
	"github.com/nodepool-go/nodepool/quota"
)

// Resource types reported by ListResources.
const (
	TypeInstance   = "instance"
	TypeImage      = "image"
	TypeFloatingIP = "floatingip"
)

// ListInstances returns every server of the project (from the cached
// listing) with what it consumes: flavor vCPUs and RAM, one instance and
// its attached volumes.
func (a *Adapter) ListInstances(ctx context.Context) ([]driver.Instance, error) {
	list, _, err := a.servers.Get(ctx)
	if err != nil {
		return nil, err
	}
	sizes := a.volumeSizes(ctx, list)
	out := make([]driver.Instance, 0, len(list))
	for i := range list {
		inst := a.instance(ctx, &list[i])
		if n := len(list[i].AttachedVolumes); n > 0 {
			gb := 0
			for _, v := range list[i].AttachedVolumes {
				gb += sizes[v.ID]
			}
			inst.Resources.Set(quota.Volumes, float64(n))
			inst.Resources.Set(quota.VolumeGB, float64(gb))
		}
		out = append(out, *inst)
	}
	return out, nil
}

// volumeSizes returns the size of every volume, if any server has one.
func (a *Adapter) volumeSizes(ctx context.Context, list []servers.Server) map[string]int {
	out := map[string]int{}
	has := false
	for _, s := range list {
		has = has || len(s.AttachedVolumes) > 0
	}
	if !has {
		return out
	}
	cl, err := a.clients(ctx)
	if err != nil || cl.volume == nil {
		return out
	}
	page, err := volumes.List(cl.volume, volumes.ListOpts{}).AllPages(ctx)
	if err != nil {
		a.log.Warn("listing volumes failed", "error", err)
		return out
	}
	vols, err := volumes.ExtractVolumes(page)
	if err != nil {
		return out
	}
	for _, v := range vols {
		out[v.ID] = v.Size
	}
	return out
}

// ListResources returns servers, private images and floating IPs with
// their nodepool metadata (server metadata, image properties, floating
// IP "key=value" tags). As housekeeping it also deletes DOWN compute ports
// seen DOWN on two checks port-cleanup-interval apart and, with
// clean-floating-ips, every unattached floating IP.
func (a *Adapter) ListResources(ctx context.Context) ([]driver.Resource, error) {
	cl, err := a.clients(ctx)
	if err != nil {
		return nil, err
	}
	var out []driver.Resource
	list, err := a.servers.Refresh(ctx)
	if err != nil {
		return nil, err
	}
	for _, s := range list {
		out = append(out, driver.Resource{Type: TypeInstance, ID: s.ID, Metadata: s.Metadata})
	}

	page, err := images.List(cl.image, images.ListOpts{Owner: ""}).AllPages(ctx)
	if err != nil {
		return nil, classify(err, "openstack: listing images")
	}
	ims, err := images.ExtractImages(page)
	if err != nil {
		return nil, err
	}
	for _, im := range ims {
		if im.Visibility == images.ImageVisibilityPublic {
			continue
		}
		md := map[string]string{}
		for k, v := range im.Properties {
			if s, ok := v.(string); ok {
				md[k] = s
			}
		}
		out = append(out, driver.Resource{Type: TypeImage, ID: im.ID, Metadata: md})
	}

	fpage, err := floatingips.List(cl.network, floatingips.ListOpts{}).AllPages(ctx)
	if err != nil {
		return nil, classify(err, "openstack: listing floating ips")
	}
	fips, err := floatingips.ExtractFloatingIPs(fpage)
	if err != nil {
		return nil, err
	}
	cleaned := 0
	for _, f := range fips {
		if a.st.CleanFloatingIPs && f.PortID == "" {
			if err := floatingips.Delete(ctx, cl.network, f.ID).ExtractErr(); err != nil {
				a.log.Warn("deleting unattached floating ip failed", "fip", f.ID, "error", err)
			} else {
				cleaned++
			}
			continue
		}
		if md := tagMetadata(f.Tags); len(md) > 0 {
			out = append(out, driver.Resource{Type: TypeFloatingIP, ID: f.ID, Metadata: md})
		}
	}
	if cleaned > 0 {
		a.count("leaked.floatingips", cleaned)
	}
	if a.st.PortCleanupInterval > 0 {
		a.cleanupPorts(ctx, cl)
	}
	return out, nil
}

// cleanupPorts deletes compute ports that were DOWN at the last check and
// still are, once port-cleanup-interval has passed.
func (a *Adapter) cleanupPorts(ctx context.Context, cl *clients) {
	a.portMu.Lock()
	defer a.portMu.Unlock()
	first := a.lastPortCleanup.IsZero()
	if !first && time.Since(a.lastPortCleanup) <= a.st.PortCleanupInterval {
		return
	}
	page, err := ports.List(cl.network, ports.ListOpts{Status: "DOWN"}).AllPages(ctx)
	if err != nil {
		a.log.Warn("listing DOWN ports failed", "error", err)
		return
	}
	plist, err := ports.ExtractPorts(page)
	if err != nil {
		return
	}
	down := map[string]bool{}
	for _, p := range plist {
		if p.Status == "DOWN" && (p.DeviceOwner == "" || strings.HasPrefix(p.DeviceOwner, "compute:")) {
			down[p.ID] = true
		}
	}
	removed := 0
	if !first {
		for id := range down {
			if !a.downPorts[id] {
				continue
			}
			if err := ports.Delete(ctx, cl.network, id).ExtractErr(); err != nil {
				a.log.Warn("deleting DOWN port failed", "port", id, "error", err)
				continue
			}
			a.log.Debug("removed DOWN port", "port", id)
			removed++
		}
	}
	if removed > 0 {
		a.count("leaked.ports", removed)
	}
	a.lastPortCleanup = time.Now()
	a.downPorts = down
}

func (a *Adapter) count(key string, n int) {
	if a.counter != nil {
		a.counter.Incr("nodepool.provider."+a.cfg.Name+"."+key, n)
	}
}

// DeleteResource deletes a leaked server, image or floating IP.
func (a *Adapter) DeleteResource(ctx context.Context, r driver.Resource) error {
	cl, err := a.clients(ctx)
	if err != nil {
		return err
	}
	switch r.Type {
	case TypeInstance:
		return classify(servers.Delete(ctx, cl.compute, r.ID).ExtractErr(), "openstack: deleting server %s", r.ID)
	case TypeImage:
		return classify(images.Delete(ctx, cl.image, r.ID).ExtractErr(), "openstack: deleting image %s", r.ID)
	case TypeFloatingIP:
		return classify(floatingips.Delete(ctx, cl.network, r.ID).ExtractErr(), "openstack: deleting floating ip %s", r.ID)
	}
	return fmt.Errorf("openstack: unknown resource type %q", r.Type)
}
