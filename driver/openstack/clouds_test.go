package openstack

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/gophercloud/gophercloud/v2/openstack/config/clouds"
	"github.com/stretchr/testify/require"
)

// TestCloudImageFormat: image_format is read from the same clouds.yaml
// gophercloud takes the credentials from (OS_CLIENT_CONFIG_FILE, else the
// working directory, else the user's config directory), qcow2 when the
// entry has none, and it becomes the provider's upload format.
func TestCloudImageFormat(t *testing.T) {
	home := t.TempDir()
	t.Setenv("OS_CLIENT_CONFIG_FILE", "")
	t.Setenv("OS_CLOUD", "")
	t.Setenv("XDG_CONFIG_HOME", home)
	t.Chdir(t.TempDir())

	write := func(path, authURL, format string) {
		t.Helper()
		require.NoError(t, os.MkdirAll(filepath.Dir(path), 0o755))
		doc := fmt.Sprintf("clouds:\n  a:\n    auth:\n      auth_url: %s\n      username: u\n      password: p\n", authURL)
		if format != "" {
			doc += "    image_format: " + format + "\n"
		}
		doc += "  b:\n    auth:\n      auth_url: " + authURL + "\n"
		require.NoError(t, os.WriteFile(path, []byte(doc), 0o600))
	}
	gophercloudAuthURL := func() string {
		t.Helper()
		ao, _, _, err := clouds.Parse(clouds.WithCloudName("a"))
		require.NoError(t, err)
		return ao.IdentityEndpoint
	}

	write(filepath.Join(home, "openstack", "clouds.yaml"), "http://xdg", "raw")
	require.Equal(t, "http://xdg", gophercloudAuthURL())
	require.Equal(t, "raw", cloudImageFormat("a"))
	require.Equal(t, DefaultImageFormat, cloudImageFormat("b"), "no image_format: qcow2")
	require.Equal(t, DefaultImageFormat, cloudImageFormat("unknown"))

	write("clouds.yaml", "http://cwd", "vhd")
	require.Equal(t, "http://cwd", gophercloudAuthURL(), "the working directory's file wins")
	require.Equal(t, "vhd", cloudImageFormat("a"))

	env := filepath.Join(t.TempDir(), "env-clouds.yaml")
	write(env, "http://env", "")
	t.Setenv("OS_CLIENT_CONFIG_FILE", env)
	require.Equal(t, "http://env", gophercloudAuthURL(), "OS_CLIENT_CONFIG_FILE wins")
	require.Equal(t, DefaultImageFormat, cloudImageFormat("a"), "its entry sets no image_format")

	write(env, "http://env", "raw")
	p := parse(t, "name: os\ncloud: a\ncloud-images:\n  - name: cirros\n"+basePools)
	require.Equal(t, "raw", p.ImageFormat, "the provider uploads (and so builds) raw")
	p = parse(t, "name: os\ncloud: b\ncloud-images:\n  - name: cirros\n"+basePools)
	require.Equal(t, "qcow2", p.ImageFormat)

	t.Setenv("OS_CLIENT_CONFIG_FILE", filepath.Join(t.TempDir(), "missing.yaml"))
	require.Equal(t, DefaultImageFormat, cloudImageFormat("a"), "no readable clouds.yaml: qcow2")
}
