package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/nodepool-go/nodepool/driver"
	"github.com/nodepool-go/nodepool/internal/status"
	"github.com/nodepool-go/nodepool/internal/table"
	"github.com/nodepool-go/nodepool/zkclient"
)

// listing prints a producer's table (or JSON with --format json).
func (c *cli) listing(t *status.Table, err error) error {
	if err != nil {
		return err
	}
	if c.sa.get("format") == "json" {
		fmt.Fprintf(c.stdout, "%s\n", t.JSON())
		return nil
	}
	fmt.Fprintln(c.stdout, t.Text())
	return nil
}

func (c *cli) list(ctx context.Context) error {
	t, err := c.src.NodeList(ctx, "")
	if err != nil {
		return err
	}
	if !c.sa.flag("detail") && c.sa.get("format") != "json" {
		t = t.Select(status.NodeBasicFields)
	}
	return c.listing(t, nil)
}

// printNode prints the 9-column node table for one node id.
func (c *cli) printNode(ctx context.Context, id string) error {
	t, err := c.src.NodeList(ctx, id)
	if err != nil {
		return err
	}
	fmt.Fprintln(c.stdout, t.Select(status.NodeBasicFields).Text())
	return nil
}

func (c *cli) imageBuild(ctx context.Context) error {
	name := c.sa.get("image")
	di := c.cfg.Diskimage(name)
	if di == nil {
		return fmt.Errorf("Trying to build a non disk-image-builder image: %s", name)
	}
	if di.Pause {
		return fmt.Errorf("Skipping build request for image %s; paused", name)
	}
	return c.zk.RequestBuild(ctx, name)
}

// lockNode reads a node and takes its lock (blocking, lockTimeout). It
// returns nil, nil after printing "Node id X not found".
func (c *cli) lockNode(ctx context.Context, id string) (*zkclient.Node, *zkclient.Lock, error) {
	notFound := func() (*zkclient.Node, *zkclient.Lock, error) {
		fmt.Fprintf(c.stdout, "Node id %s not found\n", id)
		return nil, nil, nil
	}
	if _, err := c.zk.GetNode(ctx, id); errors.Is(err, zkclient.ErrNoNode) || errors.Is(err, zkclient.ErrEmpty) || strings.Contains(id, "/") {
		return notFound()
	} else if err != nil {
		return nil, nil, err
	}
	lock := c.zk.NodeLock(id, zkclient.WithIdentifier("nodepool-cli"))
	lctx, cancel := context.WithTimeout(ctx, c.lockTimeout)
	err := lock.Acquire(lctx)
	cancel()
	if errors.Is(err, zkclient.ErrNoNode) {
		return notFound()
	}
	if errors.Is(err, zkclient.ErrLockTimeout) {
		return nil, nil, fmt.Errorf("timeout after %s waiting for the lock of node %s (%s)", c.lockTimeout, id, zkclient.NodeLockPath(id))
	}
	if err != nil {
		return nil, nil, err
	}
	// Re-read under the lock so that nothing written meanwhile is lost.
	n, err := c.zk.GetNode(ctx, id)
	if err != nil {
		_ = lock.Release(ctx)
		if errors.Is(err, zkclient.ErrNoNode) || errors.Is(err, zkclient.ErrEmpty) {
			return notFound()
		}
		return nil, nil, err
	}
	return n, lock, nil
}

func (c *cli) setNodeState(n *zkclient.Node, s zkclient.NodeState) {
	n.State = s
	n.StateTime = float64(c.now().UnixNano()) / 1e9
}

func (c *cli) hold(ctx context.Context) error {
	id := c.sa.get("id")
	n, lock, err := c.lockNode(ctx, id)
	if err != nil || n == nil {
		return err
	}
	c.setNodeState(n, zkclient.NodeHold)
	if r := c.sa.get("reason"); r != "" {
		n.Comment = r
	}
	if err := c.zk.StoreNode(ctx, n, lock); err != nil {
		_ = lock.Release(ctx)
		return err
	}
	if err := lock.Release(ctx); err != nil {
		return err
	}
	return c.printNode(ctx, id)
}

func (c *cli) deleteNode(ctx context.Context) error {
	id := c.sa.get("id")
	n, lock, err := c.lockNode(ctx, id)
	if err != nil || n == nil {
		return err
	}
	if c.sa.flag("now") {
		prov := c.cfg.Provider(n.Provider)
		if prov == nil {
			// The lock goes away with the session.
			fmt.Fprintf(c.stdout, "Provider %s for node %s not defined on this launcher\n", n.Provider, n.ID)
			return nil
		}
		if err := c.deleteNow(ctx, n, lock, prov); err != nil {
			_ = lock.Release(ctx)
			return err
		}
	} else {
		c.setNodeState(n, zkclient.NodeDeleting)
		if err := c.zk.StoreNode(ctx, n, lock); err != nil {
			_ = lock.Release(ctx)
			return err
		}
		if err := lock.Release(ctx); err != nil {
			return err
		}
	}
	return c.printNode(ctx, id)
}

// deleteNow deletes the node's cloud instance through the provider's
// adapter and then the node record.
func (c *cli) deleteNow(ctx context.Context, n *zkclient.Node, lock *zkclient.Lock, prov *driver.ProviderConfig) error {
	log := c.log.With("logger", "nodepool.NodeDeleter", "node", n.ID, "provider", prov.Name)
	octx, cancel := context.WithTimeout(ctx, 60*time.Second)
	adapter, err := driver.Default.Open(octx, prov, driver.Env{Logger: log})
	cancel()
	if err != nil {
		return fmt.Errorf("starting provider %s: %w", prov.Name, err)
	}
	defer adapter.Close()
	c.setNodeState(n, zkclient.NodeDeleting)
	if err := c.zk.StoreNode(ctx, n, lock); err != nil {
		return err
	}
	if n.ExternalID != "" {
		dctx, cancel := context.WithTimeout(ctx, c.deleteTimeout)
		defer cancel()
		err := driver.RunDelete(dctx, adapter.DeleteMachine(n.ExternalID), c.pollInterval)
		if err != nil && dctx.Err() != nil {
			return fmt.Errorf("timeout after %s deleting instance %s of node %s", c.deleteTimeout, n.ExternalID, n.ID)
		}
		if err != nil {
			return fmt.Errorf("deleting instance %s of node %s: %w", n.ExternalID, n.ID, err)
		}
	}
	log.Info("Deleted node " + n.ID)
	return c.zk.DeleteNode(ctx, n, lock)
}

func (c *cli) imageDelete(ctx context.Context) error {
	u, err := c.zk.GetUpload(ctx, c.sa.get("image"), c.sa.get("build_id"), c.sa.get("provider"), c.sa.get("upload_id"))
	if errors.Is(err, zkclient.ErrNoNode) || errors.Is(err, zkclient.ErrEmpty) {
		fmt.Fprintln(c.stdout, "Image upload not found")
		return nil
	}
	if err != nil {
		return err
	}
	if u.State == zkclient.ImageUploading {
		fmt.Fprintln(c.stdout, "Cannot delete because image upload in progress")
		return nil
	}
	u.State = zkclient.ImageDeleting
	u.StateTime = float64(c.now().UnixNano()) / 1e9
	return c.zk.StoreUpload(ctx, u)
}

func (c *cli) dibImageDelete(ctx context.Context) error {
	id := c.sa.get("id")
	i := strings.LastIndex(id, "-")
	if i < 0 {
		return fmt.Errorf("invalid dib image id %q: expected <image>-<build id>", id)
	}
	b, err := c.zk.GetBuild(ctx, id[:i], id[i+1:])
	if errors.Is(err, zkclient.ErrNoNode) || errors.Is(err, zkclient.ErrEmpty) {
		fmt.Fprintf(c.stdout, "Build %s not found\n", id)
		return nil
	}
	if err != nil {
		return err
	}
	if b.State == zkclient.ImageBuilding {
		fmt.Fprintln(c.stdout, "Cannot delete a build in progress")
		return nil
	}
	b.State = zkclient.ImageDeleting
	b.StateTime = float64(c.now().UnixNano()) / 1e9
	return c.zk.StoreBuild(ctx, b)
}

type providerBuild struct{ image, build string }

// providerData collects the builds with a providers/<p> znode and the
// nodes of provider p.
func (c *cli) providerData(ctx context.Context, p string) ([]providerBuild, []*zkclient.Node, error) {
	var builds []providerBuild
	images, err := c.zk.ImageNames(ctx)
	if err != nil {
		return nil, nil, err
	}
	for _, img := range images {
		ids, err := c.zk.BuildIDs(ctx, img)
		if err != nil {
			return nil, nil, err
		}
		for _, id := range ids {
			ok, _, err := c.zk.Exists(ctx, zkclient.BuildProviderPath(img, id, p))
			if err != nil {
				return nil, nil, err
			}
			if ok {
				builds = append(builds, providerBuild{img, id})
			}
		}
	}
	all, err := c.zk.Nodes(ctx, nil)
	if err != nil {
		return nil, nil, err
	}
	var nodes []*zkclient.Node
	for _, n := range all {
		if n.Provider == p {
			nodes = append(nodes, n)
		}
	}
	return builds, nodes, nil
}

func (c *cli) info(ctx context.Context) error {
	p := c.sa.get("provider")
	builds, nodes, err := c.providerData(ctx, p)
	if err != nil {
		return err
	}
	var imgRows, nodeRows [][]string
	for _, b := range builds {
		ids, err := c.zk.Children(ctx, zkclient.UploadsPath(b.image, b.build, p))
		if err != nil && !errors.Is(err, zkclient.ErrNoNode) {
			return err
		}
		var ups []string
		for _, id := range ids {
			if id != "lock" {
				ups = append(ups, id)
			}
		}
		sort.Strings(ups)
		imgRows = append(imgRows, []string{b.image, b.build, strings.Join(ups, ",")})
	}
	for _, n := range nodes {
		nodeRows = append(nodeRows, []string{n.ID, n.ExternalID})
	}
	fmt.Fprintf(c.stdout, "ZooKeeper data for provider %s\n\n", p)
	fmt.Fprintln(c.stdout, "Image data:")
	fmt.Fprintln(c.stdout, table.Render([]string{"Image Name", "Build ID", "Upload IDs"}, imgRows))
	fmt.Fprintln(c.stdout, "\nNodes:")
	fmt.Fprintln(c.stdout, table.Render([]string{"ID", "Server ID"}, nodeRows))
	return nil
}

func (c *cli) erase(ctx context.Context) error {
	p := c.sa.get("provider")
	builds, nodes, err := c.providerData(ctx, p)
	if err != nil {
		return err
	}
	if !c.sa.flag("force") {
		fmt.Fprintln(c.stdout)
		fmt.Fprintln(c.stdout, "WARNING! This action is not reversible!")
		fmt.Fprintf(c.stdout, "Erase ZooKeeper data for provider %s? [N/y] ", p)
		line, _ := bufio.NewReader(c.stdin).ReadString('\n')
		if a := strings.TrimSpace(line); a != "y" && a != "Y" {
			fmt.Fprintln(c.stdout, "Aborting. No data erased.")
			return nil
		}
	}
	fmt.Fprintf(c.stdout, "Erasing build data for %s...\n", p)
	for _, b := range builds {
		if err := c.zk.DeleteRecursive(ctx, zkclient.BuildProviderPath(b.image, b.build, p)); err != nil {
			return err
		}
	}
	fmt.Fprintf(c.stdout, "Erasing node data for %s...\n", p)
	for _, n := range nodes {
		if err := c.zk.DeleteNode(ctx, n, nil); err != nil {
			return err
		}
	}
	return nil
}

// alienImageList lists cloud images carrying nodepool_build_id metadata
// that no ready upload in ZooKeeper accounts for. Images are found through
// the optional driver.LeakCleaner interface (resources of type "image");
// providers whose adapter cannot list images count as having none.
func (c *cli) alienImageList(ctx context.Context) error {
	t := &status.Table{Columns: []status.Column{{Field: "provider", Title: "Provider"}, {Field: "name", Title: "Name"}, {Field: "id", Title: "Image ID"}}}
	want := c.sa.get("provider")
	for _, prov := range c.cfg.Providers {
		if want != "" && prov.Name != want {
			continue
		}
		images, err := c.cloudImages(ctx, prov)
		if err != nil {
			c.log.With("logger", "nodepool.cmd").Warn(fmt.Sprintf("Exception listing alien images for %s: %v", prov.Name, err))
			continue
		}
		known := map[string]bool{}
		for _, di := range prov.Diskimages {
			ids, err := c.zk.BuildIDs(ctx, di.Name)
			if err != nil {
				return err
			}
			for _, b := range ids {
				ups, err := c.zk.Uploads(ctx, di.Name, b, prov.Name, zkclient.ImageReady)
				if err != nil {
					return err
				}
				for _, u := range ups {
					known[u.ExternalID] = true
				}
			}
		}
		for _, r := range images {
			if r.Metadata[driver.MetaBuildID] == "" || known[r.ID] {
				continue
			}
			t.Rows = append(t.Rows, []any{prov.Name, r.Metadata["name"], r.ID})
		}
	}
	return c.listing(t, nil)
}

func (c *cli) cloudImages(ctx context.Context, prov *driver.ProviderConfig) ([]driver.Resource, error) {
	octx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	adapter, err := driver.Default.Open(octx, prov, driver.Env{Logger: c.log})
	if err != nil {
		return nil, err
	}
	defer adapter.Close()
	lc, ok := adapter.(driver.LeakCleaner)
	if !ok {
		return nil, fmt.Errorf("driver %s cannot list images", prov.Driver)
	}
	res, err := lc.ListResources(octx)
	if err != nil {
		return nil, err
	}
	var out []driver.Resource
	for _, r := range res {
		if r.Type == "image" {
			out = append(out, r)
		}
	}
	return out, nil
}
