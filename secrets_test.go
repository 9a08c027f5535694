package nodepool_test

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/nodepool-go/nodepool"
	"github.com/nodepool-go/nodepool/internal/launchertest"
	"github.com/nodepool-go/nodepool/internal/testlog"
	"github.com/nodepool-go/nodepool/internal/webapp"
	"github.com/nodepool-go/nodepool/internal/zktest"
	"github.com/nodepool-go/nodepool/internal/zuulsim"
)

// TestSecretsNeverShown: the secure file's secrets appear neither in the
// launcher's logs (debug level), nor in the CLI's output, nor in the web
// API.
func TestSecretsNeverShown(t *testing.T) {
	const secret = "s3cret-Zq81xV"
	zk, chroot := zktest.Connect(t)
	host, port, err := net.SplitHostPort(zktest.Hosts()[0])
	require.NoError(t, err)
	dir := t.TempDir()
	main := filepath.Join(dir, "nodepool.yaml")
	secure := filepath.Join(dir, "secure.yaml")
	require.NoError(t, os.WriteFile(main, []byte(sprintf(`
zookeeper-servers:
  - host: %s
    port: %s
    chroot: %s
labels:
  - name: small
    min-ready: 1
diskimages:
  - name: base
    elements: [vm]
providers:
  - name: sim
    driver: simcloud
    cloud: %s
    diskimages:
      - name: base
    pools:
      - name: main
        labels:
          - name: small
`, host, port, chroot, "cloud-"+chroot[1:])), 0o600))
	require.NoError(t, os.WriteFile(secure, []byte(`
diskimages:
  - name: base
    env-vars:
      REGISTRY_PASSWORD: `+secret+`
`), 0o600))
	cfg, err := nodepool.LoadConfig(main, secure)
	require.NoError(t, err)
	require.Equal(t, secret, cfg.Diskimage("base").EnvVars["REGISTRY_PASSWORD"], "the secret is loaded")

	logs := &testlog.Buffer{}
	l, err := nodepool.NewLauncher(cfg, nodepool.WithZooKeeper(zktest.ConnectChroot(t, chroot)),
		nodepool.WithConfigFile(main, secure),
		nodepool.WithLogger(slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))))
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- l.Run(ctx) }()
	defer func() { cancel(); <-done }()
	require.Eventually(t, l.Ready, 20*time.Second, 20*time.Millisecond)
	tctx, tcancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer tcancel()
	ns := launchertest.Acquire(t, tctx, zk, []string{"small"}, zuulsim.Options{})
	require.NoError(t, ns.Return(tctx))
	l.CleanupPass(tctx)

	var shown strings.Builder
	bin := buildBinary(t, "./cmd/nodepool")
	for _, args := range [][]string{{"list", "--detail"}, {"info", "sim"}, {"dib-image-list"}, {"image-list"},
		{"request-list"}, {"config-validate"}, {"--debug", "list"}} {
		out, _ := exec.Command(bin, append([]string{"-c", main, "-s", secure}, args...)...).CombinedOutput()
		shown.Write(out)
	}
	srv := httptest.NewServer(webapp.New(l.ZooKeeper(), l.Ready, webapp.WithMetrics(l.MetricsHandler())))
	defer srv.Close()
	for _, p := range []string{"/node-list", "/request-list", "/label-list", "/image-list", "/dib-image-list",
		"/image-status", "/request-explain", "/metrics", "/ready"} {
		for _, accept := range []string{"text/plain", "application/json"} {
			req, _ := http.NewRequest(http.MethodGet, srv.URL+p, nil)
			req.Header.Set("Accept", accept)
			resp, err := http.DefaultClient.Do(req)
			require.NoError(t, err)
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			shown.Write(body)
		}
	}
	require.NotEmpty(t, logs.String())
	require.NotContains(t, logs.String(), secret, "launcher logs")
	require.NotContains(t, shown.String(), secret, "CLI output and web API")
}
