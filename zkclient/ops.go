package zkclient

import (
	"context"
	"errors"
	"fmt"

	"github.com/go-zookeeper/zk"
)

// The ZooKeeper operations, with the chroot applied and each request
// counted.

func wrap(op, p string, err error) error {
	if err == nil {
		return nil
	}
	return &OpError{Op: op, Path: p, Err: err}
}

// OpError records the ZooKeeper operation and path that failed.
type OpError struct {
	Op   string // "get", "create", "set", "delete", ...
	Path string // the znode, without the chroot
	Err  error  // the go-zookeeper error
}

// Error returns "zookeeper <op> <path>: <cause>".
func (e *OpError) Error() string { return "zookeeper " + e.Op + " " + e.Path + ": " + e.Err.Error() }

// Unwrap returns the underlying error.
func (e *OpError) Unwrap() error { return e.Err }

// Get reads a znode's data.
func (c *Client) Get(ctx context.Context, p string) ([]byte, *zk.Stat, error) {
	if err := ctx.Err(); err != nil {
		return nil, nil, err
	}
	c.count(ctx, &c.ops.Reads)
	data, st, err := c.conn.Get(c.full(p))
	return data, st, wrap("get", p, err)
}

// GetW reads a znode's data and sets a watch on it.
func (c *Client) GetW(ctx context.Context, p string) ([]byte, *zk.Stat, <-chan zk.Event, error) {
	if err := ctx.Err(); err != nil {
		return nil, nil, nil, err
	}
	c.count(ctx, &c.ops.Reads)
	data, st, ch, err := c.conn.GetW(c.full(p))
	return data, st, ch, wrap("get", p, err)
}

// Exists reports whether a znode exists.
func (c *Client) Exists(ctx context.Context, p string) (bool, *zk.Stat, error) {
	if err := ctx.Err(); err != nil {
		return false, nil, err
	}
	c.count(ctx, &c.ops.Reads)
	ok, st, err := c.conn.Exists(c.full(p))
	return ok, st, wrap("exists", p, err)
}

// ExistsW reports whether a znode exists and watches for its creation,
// change or deletion.
func (c *Client) ExistsW(ctx context.Context, p string) (bool, *zk.Stat, <-chan zk.Event, error) {
	if err := ctx.Err(); err != nil {
		return false, nil, nil, err
	}
	c.count(ctx, &c.ops.Reads)
	ok, st, ch, err := c.conn.ExistsW(c.full(p))
	return ok, st, ch, wrap("exists", p, err)
}

// Children lists a znode's children (unordered).
func (c *Client) Children(ctx context.Context, p string) ([]string, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	c.count(ctx, &c.ops.Reads)
	ch, _, err := c.conn.Children(c.full(p))
	return ch, wrap("children", p, err)
}

// ChildrenW lists a znode's children and watches the list.
func (c *Client) ChildrenW(ctx context.Context, p string) ([]string, <-chan zk.Event, error) {
	if err := ctx.Err(); err != nil {
		return nil, nil, err
	}
	c.count(ctx, &c.ops.Reads)
	ch, _, w, err := c.conn.ChildrenW(c.full(p))
	return ch, w, wrap("children", p, err)
}

// Set writes a znode's data; version -1 writes unconditionally.
func (c *Client) Set(ctx context.Context, p string, data []byte, version int32) (*zk.Stat, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if err := c.checkSize(len(c.full(p)) + len(data) + packetOverhead); err != nil {
		return nil, wrap("set", p, err)
	}
	c.count(ctx, &c.ops.Sets)
	st, err := c.conn.Set(c.full(p), data, version)
	return st, wrap("set", p, err)
}

// CreateFlags are the znode creation modes.
type CreateFlags int32

// Creation modes.
const (
	Persistent          CreateFlags = 0
	Ephemeral           CreateFlags = zk.FlagEphemeral
	Sequential          CreateFlags = zk.FlagSequence
	EphemeralSequential CreateFlags = zk.FlagEphemeral | zk.FlagSequence
)

var openACL = zk.WorldACL(zk.PermAll)

// Create creates a znode and returns its path (with the sequence suffix for
// sequential nodes). With makepath, missing ancestors are created as empty
// persistent znodes.
func (c *Client) Create(ctx context.Context, p string, data []byte, flags CreateFlags, makepath bool) (string, error) {
	if err := c.checkSize(len(c.full(p)) + len(data) + packetOverhead); err != nil {
		return "", wrap("create", p, err)
	}
	for {
		if err := ctx.Err(); err != nil {
			return "", err
		}
		c.count(ctx, &c.ops.Creates)
		got, err := c.conn.Create(c.full(p), data, int32(flags), openACL)
		if err == nil {
			return c.strip(got), nil
		}
		if errors.Is(err, zk.ErrNoNode) && makepath {
			if err := c.EnsurePath(ctx, parent(p)); err != nil {
				return "", err
			}
			makepath = false // once is enough; a racing delete is reported
			continue
		}
		return "", wrap("create", p, err)
	}
}

// EnsurePath creates p and its missing ancestors as empty persistent znodes.
func (c *Client) EnsurePath(ctx context.Context, p string) error {
	if p == "/" || p == "" {
		return nil
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	c.count(ctx, &c.ops.Creates)
	_, err := c.conn.Create(c.full(p), nil, 0, openACL)
	switch {
	case err == nil, errors.Is(err, zk.ErrNodeExists):
		return nil
	case errors.Is(err, zk.ErrNoNode):
		if err := c.EnsurePath(ctx, parent(p)); err != nil {
			return err
		}
		c.count(ctx, &c.ops.Creates)
		_, err = c.conn.Create(c.full(p), nil, 0, openACL)
		if err == nil || errors.Is(err, zk.ErrNodeExists) {
			return nil
		}
	}
	return wrap("create", p, err)
}

// Delete removes one znode; version -1 deletes unconditionally.
func (c *Client) Delete(ctx context.Context, p string, version int32) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	c.count(ctx, &c.ops.Deletes)
	return wrap("delete", p, c.conn.Delete(c.full(p), version))
}

// DeleteRecursive removes p and everything below it, depth first, ignoring
// znodes that are already gone.
func (c *Client) DeleteRecursive(ctx context.Context, p string) error {
	children, err := c.Children(ctx, p)
	if errors.Is(err, zk.ErrNoNode) {
		return nil
	}
	if err != nil {
		return err
	}
	for _, ch := range children {
		if err := c.DeleteRecursive(ctx, p+"/"+ch); err != nil {
			return err
		}
	}
	err = c.Delete(ctx, p, -1)
	switch {
	case err == nil, errors.Is(err, zk.ErrNoNode):
		return nil
	case errors.Is(err, zk.ErrNotEmpty):
		// Someone created a child meanwhile (e.g. a lock contender); retry.
		return c.DeleteRecursive(ctx, p)
	}
	return err
}

// Op is one operation of a Multi transaction.
type Op interface{ zkOp(c *Client) any }

// CreateOp creates a znode in a transaction.
type CreateOp struct {
	Path  string      // the znode to create (sequential: its prefix)
	Data  []byte      // its data
	Flags CreateFlags // persistent, ephemeral and/or sequential
}

// SetOp sets data in a transaction.
type SetOp struct {
	Path    string // the znode to write
	Data    []byte // its new data
	Version int32  // expected data version; -1 for any

	// record is a private copy of the record Data encodes (NodeSet,
	// RequestSet): a cache that takes the write adopts it instead of
	// decoding Data.
	record any
}

// NodeSet is the SetOp that writes node n at the given expected version.
func NodeSet(n *Node, version int32) SetOp {
	return SetOp{Path: NodePath(n.ID), Data: n.AppendJSON(nil), Version: version, record: n.Clone()}
}

// RequestSet is the SetOp that writes request r at the given expected
// version.
func RequestSet(r *NodeRequest, version int32) SetOp {
	data, rec := r.AppendJSON(nil), r.Clone()
	rec.Size = len(data)
	return SetOp{Path: RequestPath(r.ID), Data: data, Version: version, record: rec}
}

// DeleteOp deletes a znode in a transaction.
type DeleteOp struct {
	Path    string // the znode to delete
	Version int32  // expected data version; -1 for any
}

// CheckOp asserts a znode's version in a transaction.
type CheckOp struct {
	Path    string // the znode to check
	Version int32  // the data version it must have
}

func (o CreateOp) zkOp(c *Client) any {
	return &zk.CreateRequest{Path: c.full(o.Path), Data: o.Data, Acl: openACL, Flags: int32(o.Flags)}
}
func (o SetOp) zkOp(c *Client) any {
	return &zk.SetDataRequest{Path: c.full(o.Path), Data: o.Data, Version: o.Version}
}
func (o DeleteOp) zkOp(c *Client) any {
	return &zk.DeleteRequest{Path: c.full(o.Path), Version: o.Version}
}
func (o CheckOp) zkOp(c *Client) any {
	return &zk.CheckVersionRequest{Path: c.full(o.Path), Version: o.Version}
}

// Multi runs the operations atomically. On failure the error of the first
// failing operation is returned.
func (c *Client) Multi(ctx context.Context, ops ...Op) ([]zk.MultiResponse, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	reqs := make([]any, len(ops))
	size := packetOverhead
	for i, o := range ops {
		reqs[i] = o.zkOp(c)
		size += c.opSize(o)
	}
	if err := c.checkSize(size); err != nil {
		return nil, wrap("multi", "", err)
	}
	c.count(ctx, &c.ops.Multis)
	res, err := c.conn.Multi(reqs...)
	if err != nil {
		for i, r := range res {
			if r.Error != nil && !errors.Is(r.Error, zk.ErrAPIError) {
				return res, wrap("multi", fmt.Sprintf("op %d", i), r.Error)
			}
		}
		return res, wrap("multi", "", err)
	}
	for i := range res {
		res[i].String = c.strip(res[i].String)
	}
	return res, nil
}
