package nodepool_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/nodepool-go/nodepool"
	"github.com/nodepool-go/nodepool/config"
	"github.com/nodepool-go/nodepool/driver"
	"github.com/nodepool-go/nodepool/internal/launchertest"
	"github.com/nodepool-go/nodepool/internal/zktest"
	"github.com/nodepool-go/nodepool/internal/zuulsim"
	"github.com/nodepool-go/nodepool/zkclient"
)

// simcloudUnder returns simcloud's configuration with its provider naming
// the driver by another name.
func simcloudUnder(name, cloud string) string {
	return strings.Replace(simYAML("sim", cloud, 4), "driver: simcloud", "driver: "+name, 1)
}

func serveOne(t *testing.T, zk *zkclient.Client) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	ns := launchertest.Acquire(t, ctx, zk, []string{"small"}, zuulsim.Options{})
	require.Len(t, ns.Nodes, 1)
	require.Equal(t, "sim", ns.Nodes[0].Data.Provider)
	require.NoError(t, ns.Return(ctx))
}

// TestWithDriverConfiguredFromYAML: a driver handed to one launcher with
// WithDriver is configured from the YAML file like a registered one, and
// serves requests, without being in the global registry.
func TestWithDriverConfiguredFromYAML(t *testing.T) {
	sim, ok := driver.Default.Lookup("simcloud")
	require.True(t, ok)
	_, registered := driver.Default.Lookup("mycloud")
	require.False(t, registered)

	zk, chroot := zktest.Connect(t)
	path := filepath.Join(t.TempDir(), "nodepool.yaml")
	require.NoError(t, os.WriteFile(path, []byte(simcloudUnder("mycloud", "cloud-"+chroot[1:])), 0o600))
	_, err := nodepool.LoadConfig(path, "")
	require.ErrorContains(t, err, "mycloud: unknown driver", "the global registry does not know it")

	l, err := nodepool.NewLauncher(nil, nodepool.WithZooKeeper(zk), nodepool.WithConfigFile(path, ""),
		nodepool.WithDriver("mycloud", sim), nodepool.WithHostname("test-"+t.Name()))
	require.NoError(t, err)
	require.Equal(t, "mycloud", l.Config().Providers[0].Driver)
	launchertest.Run(t, l)
	serveOne(t, zk)
}

// TestEmbedderBringsTheirOwnOpenstack: a registry of the embedder's own
// may hold a driver under a stock driver's name; configuration and the
// launcher use it instead of the stock one.
func TestEmbedderBringsTheirOwnOpenstack(t *testing.T) {
	sim, _ := driver.Default.Lookup("simcloud")
	mine := driver.NewRegistry()
	mine.Register("openstack", sim)

	zk, chroot := zktest.Connect(t)
	cfg, err := config.Parse("embedded.yaml", []byte(simcloudUnder("openstack", "cloud-"+chroot[1:])), config.WithRegistry(mine))
	require.NoError(t, err, "simcloud's keys parse under the name openstack")
	l, err := nodepool.NewLauncher(cfg, nodepool.WithZooKeeper(zk), nodepool.WithDrivers(mine), nodepool.WithHostname("test-"+t.Name()))
	require.NoError(t, err)
	launchertest.Run(t, l)
	serveOne(t, zk)
}
