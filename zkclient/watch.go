package zkclient

import (
	"context"
	"strings"

	"github.com/go-zookeeper/zk"
)

// AddWatch sets a persistent watch on p, one that stays set after it fires;
// a recursive one also fires for every znode below p (creation, data
// change, deletion). Its events reach the watch routes (a TreeCache's
// event stream), not a channel. It needs ZooKeeper 3.6 or later (older
// servers answer zk.ErrUnimplemented) and lasts until the connection
// drops: set it again after every reconnection.
func (c *Client) AddWatch(ctx context.Context, p string, recursive bool) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	c.count(ctx, &c.ops.Reads)
	return wrap("addWatch", p, c.conn.AddWatch(c.full(p), recursive))
}

// WatchTree sets a persistent recursive watch on root and calls fn for
// every event below it (paths without the chroot) until stop is called.
// fn runs on the connection's receive loop and must not block. Like
// AddWatch, the watch does not survive a reconnection; callers that must
// see every change watch the session too (Subscribe) and start again.
func (c *Client) WatchTree(ctx context.Context, root string, fn func(zk.Event)) (stop func(), err error) {
	remove := c.addWatchRoute(root, fn)
	if err := c.AddWatch(ctx, root, true); err != nil {
		remove()
		return nil, err
	}
	return remove, nil
}

type watchRoute struct {
	prefix string
	fn     func(zk.Event)
	id     uint64 // tells apart routes of one prefix
}

// routeWatch hands a watch event (path relative to the chroot) to the
// routes whose prefix matches. It runs on go-zookeeper's receive loop and
// must not block.
func (c *Client) routeWatch(ev zk.Event) {
	rs := c.routes.Load()
	if rs == nil {
		return
	}
	ev.Path = c.strip(ev.Path)
	for _, r := range *rs {
		if ev.Path == r.prefix || strings.HasPrefix(ev.Path, r.prefix+"/") {
			r.fn(ev)
		}
	}
}

// addWatchRoute delivers watch events under prefix to fn (which must not
// block), and returns a function that removes the route.
func (c *Client) addWatchRoute(prefix string, fn func(zk.Event)) func() {
	c.mu.Lock()
	defer c.mu.Unlock()
	var cur []watchRoute
	if p := c.routes.Load(); p != nil {
		cur = *p
	}
	c.routeIDs++
	id := c.routeIDs
	next := append(append([]watchRoute(nil), cur...), watchRoute{prefix, fn, id})
	c.routes.Store(&next)
	return func() {
		c.mu.Lock()
		defer c.mu.Unlock()
		var cur []watchRoute
		if p := c.routes.Load(); p != nil {
			cur = *p
		}
		var out []watchRoute
		for _, r := range cur {
			if r.id != id {
				out = append(out, r)
			}
		}
		c.routes.Store(&out)
	}
}
