package zkclient

import (
	"context"
	"errors"
	"fmt"
	"path"
	"sort"
	"strings"

	"github.com/go-zookeeper/zk"
)

// --- node requests -------------------------------------------------------

// SubmitRequest creates a request under /nodepool/requests with the given
// 3-character priority and returns its id. Ephemeral requests vanish with
// the session (nodepool's own min-ready requests are ephemeral).
func (c *Client) SubmitRequest(ctx context.Context, req *NodeRequest, priority string, ephemeral bool) (string, error) {
	if len(priority) != requestPrefixLen || strings.Contains(priority, "-") {
		return "", fmt.Errorf("zkclient: request priority %q must be 3 characters without '-'", priority)
	}
	flags := Sequential
	if ephemeral {
		flags = EphemeralSequential
	}
	p, err := c.Create(ctx, RequestRoot+"/"+priority+"-", req.AppendJSON(nil), flags, true)
	if err != nil {
		return "", err
	}
	req.ID = path.Base(p)
	return req.ID, nil
}

// GetRequest reads a request; it returns ErrNoNode when it is gone.
func (c *Client) GetRequest(ctx context.Context, id string) (*NodeRequest, error) {
	data, st, err := c.Get(ctx, RequestPath(id))
	if err != nil {
		return nil, err
	}
	r, err := DecodeRequest(id, data)
	if err != nil {
		return nil, fmt.Errorf("request %s: %w", id, err)
	}
	r.Version = st.Version
	return r, nil
}

// StoreRequest writes a request unconditionally. When lock is non-nil the
// write happens only while lock's contender still exists.
func (c *Client) StoreRequest(ctx context.Context, req *NodeRequest, lock *Lock) error {
	return c.storeGuarded(ctx, RequestSet(req, -1), lock, &req.Version)
}

// DeleteRequest deletes a request (missing is not an error).
func (c *Client) DeleteRequest(ctx context.Context, id string) error {
	err := c.Delete(ctx, RequestPath(id), -1)
	if errors.Is(err, zk.ErrNoNode) {
		return nil
	}
	return err
}

// RequestIDs lists the ids under /nodepool/requests.
func (c *Client) RequestIDs(ctx context.Context) ([]string, error) {
	ids, err := c.Children(ctx, RequestRoot)
	if errors.Is(err, zk.ErrNoNode) {
		return nil, nil
	}
	return ids, err
}

// --- nodes ---------------------------------------------------------------

// CreateNode stores a new node under /nodepool/nodes and sets its ID.
func (c *Client) CreateNode(ctx context.Context, n *Node) (string, error) {
	p, err := c.Create(ctx, NodeRoot+"/", n.AppendJSON(nil), Sequential, true)
	if err != nil {
		return "", err
	}
	n.ID = path.Base(p)
	n.Version = 0
	if o, id := c.ownerOf(p); o != nil {
		o.created(id, n.AppendJSON(nil))
	}
	return n.ID, nil
}

// GetNode reads a node; ErrNoNode when it is gone, ErrEmpty when its data
// is empty (a node resurrected by a late lock).
func (c *Client) GetNode(ctx context.Context, id string) (*Node, error) {
	data, st, err := c.Get(ctx, NodePath(id))
	if err != nil {
		return nil, err
	}
	n, err := DecodeNode(id, data)
	if err != nil {
		return nil, fmt.Errorf("node %s: %w", id, err)
	}
	n.Version = st.Version
	return n, nil
}

// StoreNode writes a node. When lock is non-nil the write happens only
// while lock's contender still exists (ErrLockLost otherwise).
func (c *Client) StoreNode(ctx context.Context, n *Node, lock *Lock) error {
	return c.storeGuarded(ctx, NodeSet(n, -1), lock, &n.Version)
}

// DeleteNode writes state "deleted" and then removes the node and its lock
// directory recursively. On success the caller's lock (if any) is
// forgotten; on failure the caller still holds it.
func (c *Client) DeleteNode(ctx context.Context, n *Node, lock *Lock) error {
	n.State = NodeDeleted
	if err := c.StoreNode(ctx, n, lock); err != nil && !errors.Is(err, zk.ErrNoNode) {
		return err
	}
	if err := c.DeleteRecursive(ctx, NodePath(n.ID)); err != nil {
		return err // the caller still holds (and must release) the lock
	}
	c.recordDeleted(NodePath(n.ID))
	if lock != nil {
		lock.forget(false) // its contender went with the node
	}
	return nil
}

// NodeIDs lists the ids under /nodepool/nodes.
func (c *Client) NodeIDs(ctx context.Context) ([]string, error) {
	ids, err := c.Children(ctx, NodeRoot)
	if errors.Is(err, zk.ErrNoNode) {
		return nil, nil
	}
	return ids, err
}

// Nodes reads every node, skipping ones that are gone, empty or corrupt
// (reported through skip when non-nil).
func (c *Client) Nodes(ctx context.Context, skip func(id string, err error)) ([]*Node, error) {
	ids, err := c.NodeIDs(ctx)
	if err != nil {
		return nil, err
	}
	sort.Strings(ids)
	out := make([]*Node, 0, len(ids))
	for _, id := range ids {
		n, err := c.GetNode(ctx, id)
		if errors.Is(err, zk.ErrNoNode) {
			continue
		}
		if err != nil {
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			if skip != nil {
				skip(id, err)
			}
			continue
		}
		out = append(out, n)
	}
	return out, nil
}

// Requests reads every request, skipping ones that are gone or corrupt.
func (c *Client) Requests(ctx context.Context, skip func(id string, err error)) ([]*NodeRequest, error) {
	ids, err := c.RequestIDs(ctx)
	if err != nil {
		return nil, err
	}
	sort.Strings(ids)
	out := make([]*NodeRequest, 0, len(ids))
	for _, id := range ids {
		r, err := c.GetRequest(ctx, id)
		if errors.Is(err, zk.ErrNoNode) {
			continue
		}
		if err != nil {
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			if skip != nil {
				skip(id, err)
			}
			continue
		}
		out = append(out, r)
	}
	return out, nil
}

func (c *Client) storeGuarded(ctx context.Context, set SetOp, lock *Lock, version *int32) error {
	if lock == nil {
		st, err := c.Set(ctx, set.Path, set.Data, -1)
		if err == nil && version != nil {
			*version = st.Version
		}
		return err
	}
	check, err := lock.checkOp()
	if err != nil {
		return err
	}
	ops := []Op{check, set}
	sets := c.expectSets(ops, 0)
	res, err := c.Multi(ctx, ops...)
	settleSets(sets, res, err, nil)
	if err != nil {
		if len(res) > 0 && res[0].Error != nil && !errors.Is(res[0].Error, zk.ErrAPIError) {
			return fmt.Errorf("%w (%s)", ErrLockLost, lock.Dir())
		}
		return err
	}
	if version != nil && len(res) == 2 && res[1].Stat != nil {
		*version = res[1].Stat.Version
	}
	return nil
}

// --- components ----------------------------------------------------------

// RegisterComponent creates an ephemeral sequential registration and sets
// comp.Name and comp.Version.
func (c *Client) RegisterComponent(ctx context.Context, comp *Component) error {
	data, _ := comp.MarshalJSON()
	p, err := c.Create(ctx, ComponentPath(comp.Kind)+"/"+comp.Hostname, data, EphemeralSequential, true)
	if err != nil {
		return err
	}
	comp.Name = path.Base(p)
	comp.Version = 0
	return nil
}

// UpdateComponent writes a registration with an optimistic version check.
func (c *Client) UpdateComponent(ctx context.Context, comp *Component) error {
	data, _ := comp.MarshalJSON()
	st, err := c.Set(ctx, ComponentPath(comp.Kind)+"/"+comp.Name, data, comp.Version)
	if err != nil {
		return err
	}
	comp.Version = st.Version
	return nil
}

// UnregisterComponent deletes a registration.
func (c *Client) UnregisterComponent(ctx context.Context, comp *Component) error {
	err := c.Delete(ctx, ComponentPath(comp.Kind)+"/"+comp.Name, -1)
	if errors.Is(err, zk.ErrNoNode) {
		return nil
	}
	return err
}

// Components lists the registrations of one kind; corrupt ones are skipped.
func (c *Client) Components(ctx context.Context, kind string) ([]*Component, error) {
	names, err := c.Children(ctx, ComponentPath(kind))
	if errors.Is(err, zk.ErrNoNode) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	sort.Strings(names)
	var out []*Component
	for _, name := range names {
		data, st, err := c.Get(ctx, ComponentPath(kind)+"/"+name)
		if errors.Is(err, zk.ErrNoNode) {
			continue
		}
		if err != nil {
			return nil, err
		}
		comp := &Component{Name: name}
		if err := comp.UnmarshalJSON(data); err != nil {
			c.log.Warn("skipping unreadable component registration", "path", ComponentPath(kind)+"/"+name, "error", err)
			continue
		}
		comp.Version = st.Version
		out = append(out, comp)
	}
	return out, nil
}

// --- images --------------------------------------------------------------

// ImageNames lists the images under /nodepool/images.
func (c *Client) ImageNames(ctx context.Context) ([]string, error) {
	names, err := c.Children(ctx, ImageRoot)
	if errors.Is(err, zk.ErrNoNode) {
		return nil, nil
	}
	sort.Strings(names)
	return names, err
}

// ImagePaused reports whether the image's pause flag exists.
func (c *Client) ImagePaused(ctx context.Context, image string) (bool, error) {
	ok, _, err := c.Exists(ctx, ImagePausePath(image))
	return ok, err
}

// SetImagePaused creates or removes the image's pause flag.
func (c *Client) SetImagePaused(ctx context.Context, image string, paused bool) error {
	if paused {
		_, err := c.Create(ctx, ImagePausePath(image), nil, Persistent, true)
		if errors.Is(err, zk.ErrNodeExists) {
			return nil
		}
		return err
	}
	err := c.Delete(ctx, ImagePausePath(image), -1)
	if errors.Is(err, zk.ErrNoNode) {
		return nil
	}
	return err
}

// RequestBuild creates the image's request-build flag.
func (c *Client) RequestBuild(ctx context.Context, image string) error {
	return c.EnsurePath(ctx, BuildRequestPath(image))
}

// BuildRequested reports whether the request-build flag exists.
func (c *Client) BuildRequested(ctx context.Context, image string) (bool, *zk.Stat, error) {
	return c.Exists(ctx, BuildRequestPath(image))
}

// ClearBuildRequest removes the request-build flag.
func (c *Client) ClearBuildRequest(ctx context.Context, image string) error {
	err := c.Delete(ctx, BuildRequestPath(image), -1)
	if errors.Is(err, zk.ErrNoNode) {
		return nil
	}
	return err
}

// BuildIDs lists an image's build ids (the lock child is skipped).
func (c *Client) BuildIDs(ctx context.Context, image string) ([]string, error) {
	ids, err := c.Children(ctx, BuildsPath(image))
	if errors.Is(err, zk.ErrNoNode) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	out := ids[:0]
	for _, id := range ids {
		if id != lockDirName {
			out = append(out, id)
		}
	}
	sort.Strings(out)
	return out, nil
}

// GetBuild reads one build.
func (c *Client) GetBuild(ctx context.Context, image, id string) (*ImageBuild, error) {
	data, st, err := c.Get(ctx, BuildPath(image, id))
	if err != nil {
		return nil, err
	}
	b := &ImageBuild{ImageName: image, ID: id}
	if err := b.UnmarshalJSON(data); err != nil {
		return nil, fmt.Errorf("build %s-%s: %w", image, id, err)
	}
	b.Version = st.Version
	return b, nil
}

// Builds reads an image's builds, optionally only those in the given states.
func (c *Client) Builds(ctx context.Context, image string, states ...ImageState) ([]*ImageBuild, error) {
	ids, err := c.BuildIDs(ctx, image)
	if err != nil {
		return nil, err
	}
	var out []*ImageBuild
	for _, id := range ids {
		b, err := c.GetBuild(ctx, image, id)
		if errors.Is(err, zk.ErrNoNode) || errors.Is(err, ErrEmpty) {
			continue
		}
		if err != nil {
			c.log.Warn("skipping unreadable build", "image", image, "build", id, "error", err)
			continue
		}
		if len(states) == 0 || hasState(states, b.State) {
			out = append(out, b)
		}
	}
	return out, nil
}

func hasState(states []ImageState, s ImageState) bool {
	for _, x := range states {
		if x == s {
			return true
		}
	}
	return false
}

// CreateBuild stores a new build with a fresh UUID id (when b.ID is empty)
// at its non-sequential path.
func (c *Client) CreateBuild(ctx context.Context, b *ImageBuild) error {
	if b.ID == "" {
		b.ID = NewBuildID()
	}
	data, _ := b.MarshalJSON()
	_, err := c.Create(ctx, BuildPath(b.ImageName, b.ID), data, Persistent, true)
	return err
}

// StoreBuild overwrites a build.
func (c *Client) StoreBuild(ctx context.Context, b *ImageBuild) error {
	data, _ := b.MarshalJSON()
	st, err := c.Set(ctx, BuildPath(b.ImageName, b.ID), data, -1)
	if err == nil {
		b.Version = st.Version
	}
	return err
}

// BuildProviders lists the providers that have uploads of a build.
func (c *Client) BuildProviders(ctx context.Context, image, build string) ([]string, error) {
	ps, err := c.Children(ctx, BuildProvidersPath(image, build))
	if errors.Is(err, zk.ErrNoNode) {
		return nil, nil
	}
	sort.Strings(ps)
	return ps, err
}

// Uploads reads the uploads of a build to a provider, optionally filtered
// by state.
func (c *Client) Uploads(ctx context.Context, image, build, provider string, states ...ImageState) ([]*ImageUpload, error) {
	ids, err := c.Children(ctx, UploadsPath(image, build, provider))
	if errors.Is(err, zk.ErrNoNode) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	sort.Strings(ids)
	var out []*ImageUpload
	for _, id := range ids {
		if id == lockDirName {
			continue
		}
		u, err := c.GetUpload(ctx, image, build, provider, id)
		if errors.Is(err, zk.ErrNoNode) || errors.Is(err, ErrEmpty) {
			continue
		}
		if err != nil {
			c.log.Warn("skipping unreadable upload", "path", UploadPath(image, build, provider, id), "error", err)
			continue
		}
		if len(states) == 0 || hasState(states, u.State) {
			out = append(out, u)
		}
	}
	return out, nil
}

// GetUpload reads one upload.
func (c *Client) GetUpload(ctx context.Context, image, build, provider, id string) (*ImageUpload, error) {
	data, st, err := c.Get(ctx, UploadPath(image, build, provider, id))
	if err != nil {
		return nil, err
	}
	u := &ImageUpload{ImageName: image, BuildID: build, ProviderName: provider, ID: id}
	if err := u.UnmarshalJSON(data); err != nil {
		return nil, fmt.Errorf("upload %s: %w", UploadPath(image, build, provider, id), err)
	}
	u.Version = st.Version
	return u, nil
}

// CreateUpload stores a new upload record with a sequential id.
func (c *Client) CreateUpload(ctx context.Context, u *ImageUpload) error {
	if ok, _, err := c.Exists(ctx, BuildsPath(u.ImageName)); err != nil {
		return err
	} else if !ok {
		return fmt.Errorf("zkclient: image %s has no builds directory", u.ImageName)
	}
	data, _ := u.MarshalJSON()
	p, err := c.Create(ctx, UploadsPath(u.ImageName, u.BuildID, u.ProviderName)+"/", data, Sequential, true)
	if err != nil {
		return err
	}
	u.ID = path.Base(p)
	return nil
}

// StoreUpload overwrites an upload.
func (c *Client) StoreUpload(ctx context.Context, u *ImageUpload) error {
	data, _ := u.MarshalJSON()
	st, err := c.Set(ctx, u.Path(), data, -1)
	if err == nil {
		u.Version = st.Version
	}
	return err
}

// MostRecentUpload returns the upload of image to provider in the given
// state with the greatest state_time, or nil.
func (c *Client) MostRecentUpload(ctx context.Context, image, provider string, state ImageState) (*ImageUpload, error) {
	builds, err := c.BuildIDs(ctx, image)
	if err != nil {
		return nil, err
	}
	var best *ImageUpload
	for _, b := range builds {
		ups, err := c.Uploads(ctx, image, b, provider, state)
		if err != nil {
			return nil, err
		}
		for _, u := range ups {
			if best == nil || u.StateTime > best.StateTime {
				best = u
			}
		}
	}
	return best, nil
}
