package main

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/nodepool-go/nodepool/config"
	"github.com/nodepool-go/nodepool/driver"
	"github.com/nodepool-go/nodepool/driver/drivertest"
	"github.com/nodepool-go/nodepool/internal/zktest"
)

// TestSchedulerRunsDefaultJobs runs the example against the test
// ZooKeeper in a fresh chroot and checks what it reports: where each job
// could go and why, which were rejected, that every submitted job was
// fulfilled on the expected pool, and that every node was deleted.
func TestSchedulerRunsDefaultJobs(t *testing.T) {
	zk, chroot := zktest.Connect(t)
	var out bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	err := run(ctx, options{Hosts: zktest.Hosts(), Chroot: chroot, Hold: 2 * time.Second}, &out)
	text := out.String()
	t.Log("\n" + text)
	require.NoError(t, err)

	// Placement, before submission.
	for _, want := range []string{
		"job lint: labels [small]\n  host-a/main (priority 1): can serve now\n      needs {cores: 2, instances: 1, ram: 2048}, left {cores: 8, instances: 4, ram: 16384}: would leave {cores: 6, instances: 3, ram: 14336}\n",
		"  host-b/main (priority 2): can serve now\n      needs {cores: 2, instances: 1, ram: 2048}, left {cores: 4, instances: 2, ram: 8192}: would leave {cores: 2, instances: 1, ram: 6144}\n      but left to pool embedded-scheduler-PoolWorker.host-a-main-",
		"job unit: labels [small small]\n  host-a/main (priority 1): can serve now\n      needs {cores: 4, instances: 2, ram: 4096}, left {cores: 6, instances: 3, ram: 14336}: would leave {cores: 2, instances: 1, ram: 10240}\n",
		"job integration: labels [large small]\n  host-a/main (priority 1): must wait: waiting for quota: cloud cores: 6 used + 6 needed > 8\n      needs {cores: 6, instances: 2, ram: 10240}, left {cores: 2, instances: 1, ram: 10240}: short of cores by 4, instances by 1\n  host-b/main (priority 2): cannot serve: node type(s) [large] not available\n",
		"job gpu-train: labels [gpu]\n  host-a/main (priority 1): cannot serve: node type(s) [gpu] not available\n  host-b/main (priority 2): cannot serve: node type(s) [gpu] not available\n  => not submitted: no pool can ever serve it\n",
		"job huge-matrix: labels [large large large]\n  host-a/main (priority 1): cannot serve: it would exceed quota (cloud cores: 0 used + 12 needed > 8)\n",
		"summary: 6 jobs, 4 submitted, 2 rejected, 4 fulfilled, 0 failed; 6 nodes launched, 6 deleted; VMs left: host-a 0, host-b 0\n",
	} {
		require.Contains(t, text, want)
	}
	require.Regexp(t, `job lint: labels[^=]*=> submitted as request 100-\d{10}; expected on host-a/main now`, text)
	require.Regexp(t, `job integration: labels[^=]*=> submitted as request 100-\d{10}; it waits for host-a/main: waiting for quota`, text)
	require.Regexp(t, `job huge-matrix: labels[^=]*=> not submitted: no pool can ever serve it`, text)

	// Fulfilment on the pools placement named, then return and deletion.
	for job, want := range map[string]string{
		"lint":        `node (\d{10}) \(small on host-a/main, [0-9.]+, VM host-a-vm-\d+\)`,
		"unit":        `node (\d{10}) \(small on host-a/main, [^)]*\) node (\d{10}) \(small on host-a/main, [^)]*\)`,
		"integration": `node (\d{10}) \(large on host-a/main, [^)]*\) node (\d{10}) \(small on host-a/main, [^)]*\)`,
		"docs":        `node (\d{10}) \(small on host-b/main, [0-9.]+, VM host-b-vm-\d+\)`,
	} {
		m := regexp.MustCompile(`job ` + job + `: request 100-\d{10} fulfilled after [^:]+: ` + want + `; nodes in use\n`).FindStringSubmatchIndex(text)
		require.NotNil(t, m, "job %s fulfilled as expected", job)
		ids := []string{}
		for i := 2; i < len(m); i += 2 {
			ids = append(ids, text[m[i]:m[i+1]])
		}
		returned := strings.Index(text, "job "+job+": done; nodes "+strings.Join(ids, ", ")+" returned (used)\n")
		deleted := strings.Index(text, "job "+job+": nodes "+strings.Join(ids, ", ")+" deleted by the launcher\n")
		require.GreaterOrEqual(t, returned, m[1], "job %s returns its nodes after using them", job)
		require.Greater(t, deleted, returned, "job %s sees its nodes deleted after returning them", job)
	}
	// integration waited for quota that lint and unit gave back.
	require.Less(t, strings.Index(text, "job unit: done;"), strings.Index(text, "job integration: request"))

	// Nothing is left in ZooKeeper.
	nodes, err := zk.NodeIDs(ctx)
	require.NoError(t, err)
	require.Empty(t, nodes)
	reqs, err := zk.RequestIDs(ctx)
	require.NoError(t, err)
	require.Empty(t, reqs)
}

// TestSchedulerBinary builds the example and runs it as a process with a
// jobs file, the ZooKeeper hosts from NODEPOOL_ZK_HOSTS and a chroot flag.
func TestSchedulerBinary(t *testing.T) {
	_, chroot := zktest.Connect(t)
	bin := filepath.Join(t.TempDir(), "embedded-scheduler")
	build, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput()
	require.NoError(t, err, "go build: %s", build)
	jobs := filepath.Join(t.TempDir(), "jobs")
	require.NoError(t, os.WriteFile(jobs, []byte("# three jobs\nbuild small,small\nrender large\nnope windows\n"), 0o644))

	cmd := exec.Command(bin, "-chroot", chroot, "-jobs", jobs, "-hold", "100ms", "-timeout", "60s")
	cmd.Env = append(os.Environ(), "NODEPOOL_ZK_HOSTS="+strings.Join(zktest.Hosts(), ","))
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err = cmd.Run()
	t.Log("\n" + stdout.String())
	require.NoError(t, err, "stderr: %s", stderr.String())
	require.Contains(t, stdout.String(), "job nope: labels [windows]\n  host-a/main (priority 1): cannot serve: node type(s) [windows] not available\n")
	require.Contains(t, stdout.String(), "summary: 3 jobs, 2 submitted, 1 rejected, 2 fulfilled, 0 failed; 3 nodes launched, 3 deleted; VMs left: host-a 0, host-b 0\n")

	bad := exec.Command(bin, "-chroot", chroot, "-jobs", filepath.Join(t.TempDir(), "missing"))
	require.Error(t, bad.Run(), "a missing jobs file is an error")
}

func TestParseJobs(t *testing.T) {
	for _, tc := range []struct {
		name, in string
		want     []job
		err      string
	}{
		{name: "labels and tenants", in: "a small\n# comment\n\nb small,large acme # trailing\n",
			want: []job{{Name: "a", Labels: []string{"small"}}, {Name: "b", Labels: []string{"small", "large"}, Tenant: "acme"}}},
		{name: "no labels", in: "a\n", err: "jobs line 1"},
		{name: "too many fields", in: "a small acme extra\n", err: "jobs line 1"},
		{name: "empty", in: "# nothing\n", err: "no jobs"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseJobs(strings.NewReader(tc.in))
			if tc.err != "" {
				require.ErrorContains(t, err, tc.err)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tc.want, got)
		})
	}
}

// TestHypervisorConformance runs the shared driver conformance suite on
// the example's driver.
func TestHypervisorConformance(t *testing.T) {
	var last *hostAdapter
	drivertest.Run(t, drivertest.Harness{
		Open: func(t *testing.T) (driver.Adapter, *driver.ProviderConfig) {
			d := newHypervisorDriver()
			drivers := driver.NewRegistry()
			drivers.Register("hypervisor", d)
			cfg, err := config.Parse("embedded-scheduler.yaml", []byte(configYAML), config.WithRegistry(drivers))
			require.NoError(t, err)
			ad, err := d.Open(context.Background(), cfg.Providers[0], driver.Env{})
			require.NoError(t, err)
			last = ad.(*hostAdapter)
			return ad, cfg.Providers[0]
		},
		ProvokeQuota: func(t *testing.T) {
			last.host.mu.Lock()
			last.host.cores = 0
			last.host.mu.Unlock()
		},
		Timeout:     10 * time.Second,
		Concurrency: 4, // host-a has room for four small VMs
	})
}
