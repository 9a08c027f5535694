package zkclient

import "context"

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
