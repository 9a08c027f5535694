package builder

import (
	"log/slog"
	"net"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/nodepool-go/nodepool/config"
	"github.com/nodepool-go/nodepool/internal/testlog"
	"github.com/nodepool-go/nodepool/zkclient"
)

// TestFreeSpaceCheck: with less free space in images-dir than required no
// build (scheduled or manual) starts and the log says why; with the
// threshold lowered the same image builds.
func TestFreeSpaceCheck(t *testing.T) {
	e := newEnv(t)
	ctx := ctxT(t)
	dir := e.config().ImagesDir
	free, err := freeSpace(dir)
	require.NoError(t, err)
	require.Positive(t, free)
	require.NoError(t, e.zk.RequestBuild(ctx, "fake-image"))

	var logs testlog.Buffer
	tight := e.newBuilder("nb01.example.org", func(o *settings) {
		o.MinFreeSpace = free + 1<<40 // a TiB more than there is
		o.Logger = slog.New(slog.NewTextHandler(&logs, nil))
	})
	for i := 0; i < 2; i++ {
		require.NoError(t, tight.buildPass(ctx))
	}
	require.Empty(t, e.builds(""), "no build record is created")
	require.Equal(t, []string{BuilderIDFile}, e.imageFiles(), "DIB never ran")
	_, err = os.Stat(e.config().BuildLogDir)
	require.True(t, os.IsNotExist(err), "no build log either")
	msg := regexp.MustCompile(`Not building image fake-image: images-dir ` + regexp.QuoteMeta(dir) +
		` has (\d+) bytes free, less than the required ` + strconv.FormatInt(free+1<<40, 10) + ` \(min-free-space\); will retry`)
	out := logs.String()
	require.Len(t, msg.FindAllString(out, -1), 4, "scheduled and manual check, each iteration: %s", out)
	require.Contains(t, out, "level=WARN")
	req, _, err := e.zk.BuildRequested(ctx, "fake-image")
	require.NoError(t, err)
	require.True(t, req, "the manual request stays for a later try")

	roomy := e.newBuilder("nb01.example.org", func(o *settings) { o.MinFreeSpace = 1 })
	e.b = roomy
	build := e.buildOnce()
	require.NotNil(t, build, "the build runs once the threshold is below the free space")
	require.Equal(t, zkclient.ImageReady, build.State)
	require.NotEmpty(t, filesOf(e.imageFiles(), build.ID))
}

func TestFreeSpaceOfMissingDir(t *testing.T) {
	dir := t.TempDir()
	want, err := freeSpace(dir)
	require.NoError(t, err)
	got, err := freeSpace(filepath.Join(dir, "not", "yet"))
	require.NoError(t, err, "a missing images-dir is measured through its parent")
	require.InDelta(t, float64(want), float64(got), float64(64<<20))
}

func TestParseSize(t *testing.T) {
	for in, want := range map[string]int64{
		"0": 0, "1073741824": 1 << 30, "1G": 1 << 30, "1GiB": 1 << 30, "1GB": 1 << 30,
		"512M": 512 << 20, "512MiB": 512 << 20, "10k": 10 << 10, "2T": 2 << 40, " 3G ": 3 << 30,
	} {
		got, err := ParseSize(in)
		require.NoError(t, err, in)
		require.Equal(t, want, got, in)
	}
	for _, bad := range []string{"", "G", "-1", "1.5G", "1X", "99999999999T"} {
		_, err := ParseSize(bad)
		require.Error(t, err, bad)
	}
}

// statsdListener collects the statsd lines sent to a UDP socket that
// STATSD_HOST/STATSD_PORT point at.
type statsdListener struct {
	mu    sync.Mutex
	lines []string
}

func listenStatsd(t *testing.T) *statsdListener {
	c, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	require.NoError(t, err)
	t.Cleanup(func() { c.Close() })
	t.Setenv("STATSD_HOST", "127.0.0.1")
	t.Setenv("STATSD_PORT", strconv.Itoa(c.LocalAddr().(*net.UDPAddr).Port))
	l := &statsdListener{}
	go func() {
		buf := make([]byte, 65536)
		for {
			n, err := c.Read(buf)
			if err != nil {
				return
			}
			l.mu.Lock()
			l.lines = append(l.lines, strings.Split(string(buf[:n]), "\n")...)
			l.mu.Unlock()
		}
	}()
	return l
}

// wait returns the lines once every pattern matches one of them.
func (l *statsdListener) wait(t *testing.T, patterns ...string) []string {
	t.Helper()
	var have []string
	require.Eventually(t, func() bool {
		l.mu.Lock()
		have = append([]string(nil), l.lines...)
		l.mu.Unlock()
		for _, p := range patterns {
			re := regexp.MustCompile(`^` + p + `$`)
			found := false
			for _, line := range have {
				if re.MatchString(line) {
					found = true
					break
				}
			}
			if !found {
				return false
			}
		}
		return true
	}, 10*time.Second, 10*time.Millisecond, "want %q", patterns)
	return have
}

func (l *statsdListener) reset() {
	l.mu.Lock()
	l.lines = nil
	l.mu.Unlock()
}

// TestBuildMetrics: a build, an upload and a cleanup pass send the
// builder's statsd lines (and mirror them in Prometheus); a failing DIB reports
// its exit code and no sizes.
func TestBuildMetrics(t *testing.T) {
	sd := listenStatsd(t)
	e := newEnv(t)
	ctx := ctxT(t)

	build := e.buildOnce()
	require.NotNil(t, build)
	require.Equal(t, zkclient.ImageReady, build.State)
	require.Equal(t, []string{"qcow2", "raw"}, build.Formats)
	prefix := filepath.Join(e.config().ImagesDir, "fake-image-"+build.ID)
	var sizeLines []string
	for _, f := range build.Formats {
		size, err := allocatedSize(prefix + "." + f)
		require.NoError(t, err)
		if f == "qcow2" {
			require.Positive(t, size, "a qcow2 file has a header on disk")
		}
		sizeLines = append(sizeLines, regexp.QuoteMeta("nodepool.dib_image_build.fake-image."+f+".size:"+strconv.FormatInt(size, 10)+"|g"))
	}
	key := regexp.QuoteMeta("nodepool.dib_image_build.fake-image.status.")
	sd.wait(t, append(sizeLines,
		key+`duration:\d+\.000000\|ms`,
		key+`rc:0\|g`,
		key+`last_build:1690000000\|g`)...)

	e.uploadAll()
	ups, err := e.zk.Uploads(ctx, "fake-image", build.ID, "cloud1", zkclient.ImageReady)
	require.NoError(t, err)
	require.Len(t, ups, 1)
	sd.wait(t, `nodepool\.image_update\.fake-image\.cloud1:\d+\.000000\|ms`, `nodepool\.image_update\.fake-image\.cloud1:1\|c`)

	require.NoError(t, e.b.cleanupPass(ctx))
	sd.wait(t, `nodepool\.image_build_requests:0\|g`)
	require.NoError(t, e.zk.RequestBuild(ctx, "fake-image"))
	require.NoError(t, e.b.cleanupPass(ctx))
	sd.wait(t, `nodepool\.image_build_requests:1\|g`)
	require.NoError(t, e.zk.ClearBuildRequest(ctx, "fake-image"))

	// A failing DIB run: rc, duration and last_build, no sizes.
	sd.reset()
	e.update(func(c *config.Config) { c.Diskimages[0].EnvVars["FAKE_DIB_EXIT"] = "127" })
	e.clock.Advance(25 * time.Hour)
	failed := e.buildOnce()
	require.NotNil(t, failed)
	require.Equal(t, zkclient.ImageFailed, failed.State)
	lines := sd.wait(t, key+`rc:127\|g`, key+`duration:\d+\.000000\|ms`, key+`last_build:1690090000\|g`)
	for _, line := range lines {
		require.NotContains(t, line, ".size:", "no sizes for a failed build")
	}

	// The same figures in Prometheus.
	rec := httptest.NewRecorder()
	e.b.MetricsHandler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	body := rec.Body.String()
	for _, want := range []string{
		`nodepool_dib_image_build_rc{image="fake-image"} 127`,
		`nodepool_dib_image_build_last_build_timestamp_seconds{image="fake-image"} 1.69009e+09`,
		`nodepool_dib_image_build_duration_seconds_count{image="fake-image"} 2`,
		`nodepool_image_update_total{image="fake-image",provider="cloud1"} 1`,
		`nodepool_image_update_duration_seconds_count{image="fake-image",provider="cloud1"} 1`,
		`nodepool_image_build_requests 1`,
	} {
		require.Contains(t, body, want)
	}
	require.Regexp(t, `nodepool_dib_image_build_size_bytes\{format="qcow2",image="fake-image"\} \d`, body)
}
