package fakekube

import (
	"path/filepath"
	"testing"
)

// Setup starts a fake cluster for the test, writes a kubeconfig naming it
// under each of contexts (default "fake") in a temp dir and points
// KUBECONFIG at it; everything is undone when the test ends. Tests using
// it cannot run in parallel (t.Setenv).
func Setup(t testing.TB, contexts ...string) *Server {
	t.Helper()
	if len(contexts) == 0 {
		contexts = []string{"fake"}
	}
	s := New()
	t.Cleanup(s.Close)
	m := map[string]*Server{}
	for _, c := range contexts {
		m[c] = s
	}
	UseKubeconfig(t, m)
	return s
}

// UseKubeconfig writes a kubeconfig with the given contexts to a temp dir
// and points KUBECONFIG at it for the rest of the test.
func UseKubeconfig(t testing.TB, contexts map[string]*Server) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "kubeconfig")
	if err := WriteKubeconfig(path, contexts); err != nil {
		t.Fatal(err)
	}
	t.Setenv("KUBECONFIG", path)
	return path
}
