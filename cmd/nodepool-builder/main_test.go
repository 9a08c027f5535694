package main

import "testing"

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
