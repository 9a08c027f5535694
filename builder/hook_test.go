package builder

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/nodepool-go/nodepool/config"
	"github.com/nodepool-go/nodepool/zkclient"
)

// TestPostUploadHook runs the hook with upstream's arguments after an
// upload; a failing hook deletes the image and fails the upload.
func TestPostUploadHook(t *testing.T) {
	e := newEnv(t)
	ctx := ctxT(t)
	dir := t.TempDir()
	args, rc := filepath.Join(dir, "args"), filepath.Join(dir, "rc")
	hook := filepath.Join(dir, "hook.sh")
	require.NoError(t, os.WriteFile(hook, []byte("#!/bin/sh\necho \"$@\" >> "+args+"\necho out; echo err >&2\nexit $(cat "+rc+")\n"), 0o755))
	require.NoError(t, os.WriteFile(rc, []byte("3"), 0o644))
	e.update(func(c *config.Config) {
		s := c.Providers[0].Settings.(testSettings)
		s.Hook = hook
		c.Providers[0].Settings = s
	})
	build := e.buildOnce()
	require.NotNil(t, build)
	file := filepath.Join(e.config().ImagesDir, "fake-image-"+build.ID+".qcow2")

	attempted, err := e.b.uploadPass(ctx)
	require.NoError(t, err)
	require.True(t, attempted)
	ups, err := e.zk.Uploads(ctx, "fake-image", build.ID, "cloud1")
	require.NoError(t, err)
	require.Len(t, ups, 1)
	require.Equal(t, zkclient.ImageFailed, ups[0].State, "a failing hook fails the upload")
	cloud := cloudOf(e.cloud)
	cloud.mu.Lock()
	require.Empty(t, cloud.images, "the image of a failed hook is deleted")
	require.Len(t, cloud.deleted, 1)
	first := cloud.deleted[0]
	cloud.mu.Unlock()

	require.NoError(t, os.WriteFile(rc, []byte("0"), 0o644))
	e.uploadAll()
	ups, err = e.zk.Uploads(ctx, "fake-image", build.ID, "cloud1")
	require.NoError(t, err)
	require.Equal(t, zkclient.ImageReady, ups[len(ups)-1].State)
	got, err := os.ReadFile(args)
	require.NoError(t, err)
	require.Equal(t, []string{"cloud1 " + first + " " + file, "cloud1 " + ups[len(ups)-1].ExternalID + " " + file},
		strings.Split(strings.TrimSpace(string(got)), "\n"))
}
