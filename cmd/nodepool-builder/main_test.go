package main

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/nodepool-go/nodepool/internal/daemon"
	"github.com/nodepool-go/nodepool/internal/diffcheck"
)

func TestMinFreeSpaceFlagRejectsBadSizes(t *testing.T) {
	for _, bad := range []string{"lots", "-1", "1.5G"} {
		if rc := run([]string{"-min-free-space", bad, "-c", "/nonexistent/nodepool.yaml"}); rc != 2 {
			t.Errorf("-min-free-space %q: exit %d, want 2", bad, rc)
		}
	}
	// A valid size gets past flag parsing (and fails on the missing config).
	if rc := run([]string{"-min-free-space", "2GiB", "-c", "/nonexistent/nodepool.yaml"}); rc != 1 {
		t.Errorf("valid size: exit %d, want 1 (missing config)", rc)
	}
}

func TestUpstreamFlagsAreAccepted(t *testing.T) {
	dir := t.TempDir()
	pid := filepath.Join(dir, "builder.pid")
	logConf := filepath.Join(dir, "logging.yaml")
	if err := os.WriteFile(logConf, []byte("version: 1\nroot: {level: INFO}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	// Every upstream flag parses; the run then fails on the missing
	// configuration and removes its pid file.
	args := []string{"-d", "-f", "-l", logConf, "-p", pid, "-s", filepath.Join(dir, "secure.conf"),
		"-c", "/nonexistent/nodepool.yaml", "--build-workers", "1", "--upload-workers", "2"}
	if rc := run(args); rc != 1 {
		t.Errorf("exit %d, want 1 (missing config)", rc)
	}
	if _, err := os.Stat(pid); !os.IsNotExist(err) {
		t.Errorf("pid file left behind: %v", err)
	}
	if rc := run([]string{"--version"}); rc != 0 {
		t.Errorf("--version: exit %d", rc)
	}
}

// TestDifferencesNameEveryFlag: each flag that upstream's builder lacks
// (and the reverse) is named in docs/differences.md.
func TestDifferencesNameEveryFlag(t *testing.T) {
	fs, _, _ := flags()
	diffcheck.Names(t, diffcheck.Document(t), "nodepool-builder",
		[]string{"-l", "--version", "-p", "-d", "-f", "-c", "-s", "--build-workers", "--upload-workers", "--repl"},
		daemon.FlagNames(fs))
}
