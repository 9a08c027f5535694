// Package configfuzz fuzzes configuration parsing, lenient (Parse) and
// strict (ValidateData), with the drivers that link no cloud SDK, so the
// fuzzing build stays small. It holds tests only.
package configfuzz

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/nodepool-go/nodepool/config"
	_ "github.com/nodepool-go/nodepool/driver/metastatic"
	_ "github.com/nodepool-go/nodepool/driver/openstack"
	_ "github.com/nodepool-go/nodepool/driver/simcloud"
	_ "github.com/nodepool-go/nodepool/driver/static"
)

// FuzzParseConfig: no input makes loading or validating panic or hang.
func FuzzParseConfig(f *testing.F) {
	for _, name := range []string{"minimal.yaml", "multi-provider.yaml", "drivers.yaml", "inheritance.yaml", "parent-cycle.yaml", "static-cloud.yaml"} {
		data, err := os.ReadFile(filepath.Join("..", "testdata", "config", name))
		require.NoError(f, err)
		f.Add(data)
	}
	f.Add([]byte("a: &a [*a]\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		if cfg, err := config.Parse("fuzz.yaml", data); err == nil {
			_, _ = cfg.ZooKeeperClientConfig()
		}
		_ = config.ValidateData("fuzz.yaml", data)
	})
}
