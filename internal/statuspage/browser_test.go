package statuspage_test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/require"
)

// waitFor bounds every wait for a condition in the browser: generous, for
// a loaded CI machine; a passing run waits far less.
const waitFor = 45 * time.Second

// chromium returns the path of Debian's headless-capable Chromium,
// installing the package when it is absent, as scripts/test.sh installs
// the suite's other dependencies.
func chromium(t *testing.T) string {
	t.Helper()
	find := func() string {
		for _, name := range []string{"chromium", "chromium-browser"} {
			if p, err := exec.LookPath(name); err == nil {
				return p
			}
		}
		return ""
	}
	if p := find(); p != "" {
		return p
	}
	t.Log("installing Debian's chromium package")
	install := func(args ...string) error {
		cmd := exec.Command("apt-get", args...)
		cmd.Env = append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Logf("apt-get %v: %v\n%s", args, err, out)
		}
		return err
	}
	if install("install", "-y", "-qq", "chromium") != nil {
		require.NoError(t, install("update", "-qq"))
		require.NoError(t, install("install", "-y", "-qq", "chromium"))
	}
	p := find()
	require.NotEmpty(t, p, "chromium is not on PATH after installing it")
	return p
}

// browser starts a headless Chromium for the test and returns a context
// for one tab of it.
func browser(t *testing.T) context.Context {
	t.Helper()
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromium(t)),
		chromedp.NoSandbox, // the CI runs tests as root
		chromedp.WindowSize(1280, 1000),
		chromedp.WSURLReadTimeout(waitFor), // Chromium starts slowly on a busy machine
	)
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(actx)
	t.Cleanup(func() { cancel(); cancelAlloc() })
	// The first action starts the browser; it must not run under a timeout.
	require.NoError(t, chromedp.Do(ctx, chromedp.Navigate("about:blank")))
	return ctx
}

// poll waits until the JavaScript expression is truthy in the page.
func poll(t *testing.T, ctx context.Context, expr, what string) {
	t.Helper()
	_, err := chromedp.Run(ctx, chromedp.Poll[chromedp.Void](expr, chromedp.WithPollingTimeout(waitFor), chromedp.WithPollingInterval(100*time.Millisecond)))
	require.NoError(t, err, what)
}

func eval[T any](t *testing.T, ctx context.Context, expr string, opts ...chromedp.EvaluateOption) T {
	t.Helper()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](expr, opts...))
	require.NoError(t, err, expr)
	return v
}

// screenshotPath is where the test saves its screenshot of the page:
// $NODEPOOL_STATUS_SCREENSHOT (docs/status-page.png is made this way), or
// a file in the temporary directory.
func screenshotPath() string {
	if p := os.Getenv("NODEPOOL_STATUS_SCREENSHOT"); p != "" {
		return p
	}
	return filepath.Join(os.TempDir(), "nodepool-status-page.png")
}

// TestBrowser loads the page in headless Chromium, against a launcher on
// simcloud with a real ZooKeeper: it renders the nodes and the waiting
// request's explanation, shows the hostile strings as text without
// running them, and follows a node's change of state without a reload.
func TestBrowser(t *testing.T) {
	ctx := browser(t)
	f := newFixture(t)
	zctx, cancel := context.WithTimeout(context.Background(), 2*waitFor)
	defer cancel()

	// First in a tab of its own with scripts disabled: the server's
	// snapshot is all there is.
	t.Run("without JavaScript", func(t *testing.T) {
		tab, cancel := chromedp.NewContext(ctx)
		defer cancel()
		withoutJavaScript(t, tab, f)
	})

	require.NoError(t, chromedp.Do(ctx, chromedp.Navigate(f.srv.URL+"/")))
	// The script has replaced the server's rendering with its own.
	poll(t, ctx, `document.body.getAttribute("data-refreshes") >= 1`, "the page refreshes from status.json")
	require.Equal(t, "(live)", eval[string](t, ctx, `document.getElementById("live").textContent`))
	// A marker that a reload would lose.
	_ = eval[chromedp.Void](t, ctx, `window.notReloaded = true`)

	inUse := f.inUseNode()
	poll(t, ctx, `(function () {
		var q = document.getElementById("queue").textContent;
		return q.indexOf(`+strconv.Quote(f.waiting.ID)+`) >= 0 && q.indexOf("pool max-servers: 1 used + 1 needed > 1") >= 0;
	})()`, "the queue shows the waiting request and why it waits")
	bars := eval[string](t, ctx, `document.getElementById("bars").textContent`)
	require.Contains(t, bars, "sim-west")
	require.Contains(t, bars, "in-use 1")
	require.Contains(t, bars, "ready 2")
	require.Equal(t, 3, eval[int](t, ctx, `document.querySelectorAll("#bars svg rect").length`))
	require.Equal(t, "in-use", eval[string](t, ctx, `(function () {
		var a = Array.from(document.querySelectorAll("#nodes a")).find(function (a) { return a.textContent === `+strconv.Quote(inUse)+`; });
		return a.closest("tr").querySelector(".chip").textContent;
	})()`))
	require.Contains(t, eval[string](t, ctx, `document.getElementById("quota").textContent`), "1 of 1")

	// The hostile strings are text, and none of them ran.
	nodes := eval[string](t, ctx, `document.getElementById("nodes").textContent`)
	require.Contains(t, nodes, hostileLabel)
	require.Contains(t, nodes, hostileComment)
	require.Contains(t, eval[string](t, ctx, `document.getElementById("queue").textContent`), hostileRequestor)
	require.Equal(t, "undefined", eval[string](t, ctx, `typeof window.pwned`))
	require.Equal(t, 1, eval[int](t, ctx, `document.querySelectorAll("script").length`))
	require.Zero(t, eval[int](t, ctx, `document.querySelectorAll("img, main svg[onload]").length`))

	shot, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	require.NoError(t, err)
	path := screenshotPath()
	require.NoError(t, os.WriteFile(path, shot, 0o644))
	t.Logf("screenshot of the status page: %s", path)

	// The node in use is returned: it goes away, the waiting request gets
	// a ready node, and the page follows without reloading.
	require.NoError(t, f.inUse.Return(zctx))
	poll(t, ctx, `(function () {
		var rows = Array.from(document.querySelectorAll("#nodes tbody tr"));
		var old = rows.find(function (r) { return r.cells[0].textContent === `+strconv.Quote(inUse)+`; });
		var fresh = rows.find(function (r) { return r.cells[6].textContent === `+strconv.Quote(f.waiting.ID)+`; });
		return (!old || old.querySelector(".chip").textContent !== "in-use") && fresh && fresh.querySelector(".chip").textContent === "ready";
	})()`, "the page shows the returned node leave in-use and the waiting request's node ready")
	poll(t, ctx, `document.getElementById("queue").textContent.indexOf(`+strconv.Quote(f.waiting.ID)+`) < 0`,
		"the served request leaves the queue")
	require.True(t, eval[bool](t, ctx, `window.notReloaded === true`), "the page updated in place")
}

// withoutJavaScript loads the page with scripts disabled: the server's
// snapshot shows the same as the script would.
func withoutJavaScript(t *testing.T, ctx context.Context, f *fixture) {
	require.NoError(t, chromedp.Do(ctx,
		chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
			_, err := cdp.Call(ctx, tg, emulation.SetScriptExecutionDisabled, emulation.SetScriptExecutionDisabledParams{Value: true})
			return err
		}),
		chromedp.Navigate(f.srv.URL+"/"),
	))
	poll(t, ctx, `document.readyState === "complete"`, "the page loads")
	require.Equal(t, "(reloads every 30 s)", eval[string](t, ctx, `document.getElementById("live").textContent`), "the script did not run")
	require.Nil(t, eval[*string](t, ctx, `document.body.getAttribute("data-refreshes")`))
	queue := eval[string](t, ctx, `document.getElementById("queue").textContent`)
	require.Contains(t, queue, f.waiting.ID)
	require.Contains(t, queue, "pool max-servers: 1 used + 1 needed > 1")
	require.Contains(t, queue, hostileRequestor)
	nodes := eval[string](t, ctx, `document.getElementById("nodes").textContent`)
	require.Contains(t, nodes, f.inUseNode())
	require.Contains(t, nodes, hostileLabel)
	require.Equal(t, 3, eval[int](t, ctx, `document.querySelectorAll("#bars svg rect").length`))
}
