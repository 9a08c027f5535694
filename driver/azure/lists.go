package azure

import (
	"context"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/runtime"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/compute/armcompute/v6"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/network/armnetwork/v7"
)

// listCache is one resource type's listing of the resource group, shared
// by every machine of the provider. peek never blocks: it returns the last
// listing and starts one background refresh when that is older than the
// TTL; get waits for a listing no older than the TTL.
type listCache[T any] struct {
	ttl   time.Duration
	fetch func(ctx context.Context) ([]T, error)
	log   *slog.Logger
	ctx   context.Context

	mu      sync.Mutex
	items   []T
	at      time.Time // when the fetch that produced items started
	valid   bool
	running chan struct{} // closed when the running fetch ends
	err     error         // error of the last fetch
}

// peek returns the current listing, the start time of its fetch and the
// error of the last fetch.
func (c *listCache[T]) peek() ([]T, time.Time, bool, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if (!c.valid || time.Since(c.at) > c.ttl) && c.running == nil {
		c.startLocked()
	}
	return c.items, c.at, c.valid, c.err
}

// fresh returns a listing whose fetch started after t, if there is one.
func (c *listCache[T]) fresh(t time.Time) ([]T, bool, error) {
	items, at, valid, err := c.peek()
	if valid && at.After(t) {
		return items, true, nil
	}
	return nil, false, err
}

func (c *listCache[T]) startLocked() chan struct{} {
	ch := make(chan struct{})
	c.running = ch
	go func() {
		ctx, cancel := context.WithTimeout(c.ctx, apiTimeout)
		defer cancel()
		start := time.Now()
		items, err := c.fetch(ctx)
		c.mu.Lock()
		defer c.mu.Unlock()
		c.running, c.err = nil, err
		close(ch)
		if err != nil {
			c.log.Warn("listing failed", "error", err)
			return
		}
		if !c.valid || start.After(c.at) {
			c.items, c.at, c.valid = items, start, true
		}
	}()
	return ch
}

// get returns a listing started no longer than the TTL ago (at or after
// since, when since is later), fetching one if needed.
func (c *listCache[T]) get(ctx context.Context, since time.Time) ([]T, error) {
	for {
		c.mu.Lock()
		if c.valid && time.Since(c.at) <= c.ttl && !c.at.Before(since) {
			items := c.items
			c.mu.Unlock()
			return items, nil
		}
		ch := c.running
		if ch == nil {
			ch = c.startLocked()
		}
		c.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		c.mu.Lock()
		err := c.err
		fresh := c.valid && !c.at.Before(since)
		c.mu.Unlock()
		if err != nil && !fresh {
			return nil, err
		}
	}
}

func newList[T any](a *Adapter, what string, fetch func(ctx context.Context) ([]T, error)) *listCache[T] {
	return &listCache[T]{ttl: listTTL, log: a.log.With("list", what), ctx: a.ctx,
		fetch: func(ctx context.Context) ([]T, error) {
			items, err := fetch(ctx)
			if err != nil {
				return nil, classify(err, "listing %s", what)
			}
			return items, nil
		}}
}

// all drains a pager (the SDK follows nextLink).
func all[R any, T any](ctx context.Context, p *runtime.Pager[R], items func(R) []T) ([]T, error) {
	var out []T
	for p.More() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return nil, err
		}
		out = append(out, items(page)...)
	}
	return out, nil
}

func (a *Adapter) initLists() {
	rg := a.st.ResourceGroup
	a.vmList = newList(a, "virtual machines", func(ctx context.Context) ([]*armcompute.VirtualMachine, error) {
		return all(ctx, a.vms.NewListPager(rg, nil), func(r armcompute.VirtualMachinesClientListResponse) []*armcompute.VirtualMachine { return r.Value })
	})
	a.nicList = newList(a, "network interfaces", func(ctx context.Context) ([]*armnetwork.Interface, error) {
		return all(ctx, a.nics.NewListPager(rg, nil), func(r armnetwork.InterfacesClientListResponse) []*armnetwork.Interface { return r.Value })
	})
	a.pipList = newList(a, "public IP addresses", func(ctx context.Context) ([]*armnetwork.PublicIPAddress, error) {
		return all(ctx, a.pips.NewListPager(rg, nil), func(r armnetwork.PublicIPAddressesClientListResponse) []*armnetwork.PublicIPAddress {
			return r.Value
		})
	})
	a.diskList = newList(a, "disks", func(ctx context.Context) ([]*armcompute.Disk, error) {
		return all(ctx, a.disks.NewListByResourceGroupPager(rg, nil), func(r armcompute.DisksClientListByResourceGroupResponse) []*armcompute.Disk { return r.Value })
	})
	a.imageList = newList(a, "images", func(ctx context.Context) ([]*armcompute.Image, error) {
		return all(ctx, a.images.NewListByResourceGroupPager(rg, nil), func(r armcompute.ImagesClientListByResourceGroupResponse) []*armcompute.Image { return r.Value })
	})
}

// byName finds a listed resource by name (Azure names are
// case-insensitive).
func byName[T any](items []T, name string, nameOf func(T) *string) (T, bool) {
	for _, it := range items {
		if strings.EqualFold(deref(nameOf(it)), name) {
			return it, true
		}
	}
	var zero T
	return zero, false
}

func vmName(v *armcompute.VirtualMachine) *string   { return v.Name }
func nicName(v *armnetwork.Interface) *string       { return v.Name }
func pipName(v *armnetwork.PublicIPAddress) *string { return v.Name }
func imageName(v *armcompute.Image) *string         { return v.Name }
func diskName(v *armcompute.Disk) *string           { return v.Name }
