package fakeopenstack

import (
	"fmt"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// CloudsYAML returns a clouds.yaml document with one entry per name, each
// pointing at the fake with its credentials and region.
func (c *Cloud) CloudsYAML(names ...string) string {
	var b strings.Builder
	b.WriteString("clouds:\n")
	for _, n := range names {
		fmt.Fprintf(&b, "  %s:\n    auth:\n      auth_url: %s\n      username: %s\n      password: %s\n"+
			"      project_name: %s\n      user_domain_name: Default\n      project_domain_name: Default\n"+
			"    region_name: %s\n    interface: public\n    identity_api_version: 3\n",
			n, c.AuthURL(), c.opts.Username, c.opts.Password, c.opts.ProjectName, c.opts.Region)
		if c.opts.ImageFormat != "" {
			fmt.Fprintf(&b, "    image_format: %s\n", c.opts.ImageFormat)
		}
	}
	return b.String()
}

// WriteCloudsYAML writes CloudsYAML(names...) to path.
func (c *Cloud) WriteCloudsYAML(path string, names ...string) error {
	return os.WriteFile(path, []byte(c.CloudsYAML(names...)), 0o600)
}

// Setup starts a fake cloud on an httptest server for the test, writes a
// clouds.yaml naming it under each of names (default "fake") in a temp
// dir and points OS_CLIENT_CONFIG_FILE at it. Everything is undone when
// the test ends. Tests using it cannot run in parallel (t.Setenv).
func Setup(t testing.TB, o Options, names ...string) *Cloud {
	t.Helper()
	if len(names) == 0 {
		names = []string{"fake"}
	}
	c := New(o)
	srv := httptest.NewServer(c)
	t.Cleanup(srv.Close)
	c.SetURL(srv.URL)
	path := filepath.Join(t.TempDir(), "clouds.yaml")
	if err := c.WriteCloudsYAML(path, names...); err != nil {
		t.Fatal(err)
	}
	t.Setenv("OS_CLIENT_CONFIG_FILE", path)
	return c
}
