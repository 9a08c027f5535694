package zkclient

import (
	"context"

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
