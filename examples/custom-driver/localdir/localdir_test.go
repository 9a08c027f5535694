package localdir

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"gopkg.in/yaml.v3"

	"github.com/nodepool-go/nodepool/driver"
	"github.com/nodepool-go/nodepool/driver/drivertest"
)

// parse decodes one provider entry with the driver's ParseProvider.
func parse(t *testing.T, entry string) (*driver.ProviderConfig, *driver.Problems) {
	t.Helper()
	var n yaml.Node
	require.NoError(t, yaml.Unmarshal([]byte(entry), &n))
	probs := &driver.Problems{File: "nodepool.yaml"}
	s := driver.NewSection(n.Content[0], "providers[0]", probs)
	return Driver{}.ParseProvider(s), probs
}

func open(t *testing.T, max int) *Adapter {
	t.Helper()
	base := t.TempDir()
	cfg, probs := parse(t, "name: local\ndriver: localdir\nbase-dir: "+base+"\nmax-instances: "+strconv.Itoa(max)+
		"\npools:\n  - name: main\n    labels:\n      - name: dir\n")
	require.NoError(t, probs.Err())
	ad, err := Driver{}.Open(context.Background(), cfg, driver.Env{})
	require.NoError(t, err)
	return ad.(*Adapter)
}

func TestConformance(t *testing.T) {
	var last *Adapter
	drivertest.Run(t, drivertest.Harness{
		Open: func(t *testing.T) (driver.Adapter, *driver.ProviderConfig) {
			last = open(t, 6)
			cfg, _ := parse(t, "name: local\ndriver: localdir\nbase-dir: "+last.settings.BaseDir+
				"\nmax-instances: 6\npools:\n  - name: main\n    labels:\n      - name: dir\n")
			return last, cfg
		},
		ProvokeQuota: func(t *testing.T) {
			// Fill the directory up to its limit with one instance of
			// someone else's.
			_, err := drivertest.AdvanceCreate(context.Background(), last.CreateMachine(driver.CreateSpec{Hostname: "other"}), time.Millisecond, 5*time.Second)
			require.NoError(t, err)
			last.settings.MaxInstances = len(mustList(t, last))
		},
		SkipImages: true,
	})
}

func mustList(t *testing.T, a *Adapter) []driver.Instance {
	t.Helper()
	insts, err := a.ListInstances(context.Background())
	require.NoError(t, err)
	return insts
}

func TestParseProblemsNameTheKey(t *testing.T) {
	_, probs := parse(t, "name: local\ndriver: localdir\nbase-dir: relative/dir\nmax-instances: -1\npools: []\n")
	require.Error(t, probs.Err())
	msg := probs.Err().Error()
	require.Contains(t, msg, "providers[0].base-dir")
	require.Contains(t, msg, `expected an absolute path, got "relative/dir"`)
	require.Contains(t, msg, "providers[0].max-instances")
	_, probs = parse(t, "name: local\ndriver: localdir\npools: []\n")
	require.ErrorContains(t, probs.Err(), "base-dir")
}

func TestInstancesAreDirectories(t *testing.T) {
	a := open(t, 2)
	ctx := context.Background()
	spec := driver.CreateSpec{Hostname: "np0000000001", Metadata: map[string]string{
		driver.MetaProviderName: "local", driver.MetaNodeID: "0000000001"}}
	inst, err := drivertest.AdvanceCreate(ctx, a.CreateMachine(spec), time.Millisecond, 5*time.Second)
	require.NoError(t, err)
	data, err := os.ReadFile(filepath.Join(a.Dir(inst.ExternalID), recordFile))
	require.NoError(t, err)
	require.Contains(t, string(data), `"nodepool_node_id": "0000000001"`)

	_, err = drivertest.AdvanceCreate(ctx, a.CreateMachine(spec), time.Millisecond, 5*time.Second)
	require.NoError(t, err)
	_, err = drivertest.AdvanceCreate(ctx, a.CreateMachine(spec), time.Millisecond, 5*time.Second)
	require.True(t, driver.IsQuota(err), "the third instance exceeds max-instances 2: %v", err)

	// A reopened adapter (a restarted launcher) sees the same instances.
	again, err := Driver{}.Open(ctx, &driver.ProviderConfig{Name: "local", Settings: &a.settings}, driver.Env{})
	require.NoError(t, err)
	insts, err := again.ListInstances(ctx)
	require.NoError(t, err)
	require.Len(t, insts, 2)

	m := a.DeleteMachine(inst.ExternalID)
	done, err := m.Advance(ctx)
	require.NoError(t, err)
	require.False(t, done, "the first step only hides the directory")
	require.Len(t, mustList(t, a), 1, "a hidden directory is no longer listed")
	done, err = m.Advance(ctx)
	require.NoError(t, err)
	require.True(t, done)
	_, err = os.Stat(a.Dir(inst.ExternalID))
	require.ErrorIs(t, err, os.ErrNotExist)
	_, err = a.DeleteMachine(inst.ExternalID).Advance(ctx)
	require.True(t, driver.IsNotFound(err))
}
