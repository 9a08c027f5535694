package statuspage_test

import (
	"encoding/json"
	"io"
	"net/http"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/nodepool-go/nodepool/internal/metrics"
)

// dashboardFile is the Grafana dashboard shipped in docs/.
const dashboardFile = "../../docs/grafana/nodepool-dashboard.json"

type dashboard struct {
	UID        string `json:"uid"`
	Templating struct {
		List []struct {
			Name string `json:"name"`
		} `json:"list"`
	} `json:"templating"`
	Panels []struct {
		ID      int    `json:"id"`
		Type    string `json:"type"`
		Title   string `json:"title"`
		GridPos struct {
			X, Y, W, H int
		} `json:"gridPos"`
		Targets []struct {
			Expr string `json:"expr"`
		} `json:"targets"`
	} `json:"panels"`
}

// exposition reads the metric families and their label names from a
// Prometheus text exposition.
func exposition(body string) map[string]map[string]bool {
	out := map[string]map[string]bool{}
	label := regexp.MustCompile(`([a-zA-Z_][a-zA-Z0-9_]*)="`)
	for _, line := range strings.Split(body, "\n") {
		if strings.HasPrefix(line, "# TYPE ") {
			if f := strings.Fields(line); len(f) >= 3 && out[f[2]] == nil {
				out[f[2]] = map[string]bool{}
			}
			continue
		}
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		name, rest, _ := strings.Cut(line, "{")
		name = strings.Fields(name)[0]
		if out[name] == nil {
			out[name] = map[string]bool{}
		}
		labels, _, _ := strings.Cut(rest, "}")
		for _, m := range label.FindAllStringSubmatch(labels, -1) {
			out[name][m[1]] = true
		}
	}
	return out
}

// testDashboard checks every query of the Grafana dashboard against the
// series a launcher exports (scraped from the fixture's /metrics) and those
// only a builder or a cloud API call produces (named by the metrics
// package's mapping): a renamed series or label fails here.
func testDashboard(t *testing.T, f *fixture) {
	raw, err := os.ReadFile(dashboardFile)
	require.NoError(t, err)
	var d dashboard
	require.NoError(t, json.Unmarshal(raw, &d))
	require.NotEmpty(t, d.UID)

	var known map[string]map[string]bool
	require.Eventually(t, func() bool {
		resp, err := http.Get(f.srv.URL + "/metrics")
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		if err != nil {
			return false
		}
		known = exposition(string(body))
		return known["nodepool_provider_max_servers"] != nil && known["nodepool_tenant_limit"] != nil &&
			known["nodepool_launch_duration_seconds_bucket"] != nil
	}, 20*time.Second, 100*time.Millisecond, "the launcher exports its gauges")

	// The request queue series (Prometheus only).
	require.True(t, known["nodepool_requests"]["state"])
	require.NotNil(t, known["nodepool_request_oldest_waiting_seconds"])

	add := func(kind metrics.Kind, key string) {
		s := metrics.Map(kind, key)
		names := []string{s.Name}
		if kind == metrics.Timer {
			names = []string{s.Name + "_bucket", s.Name + "_sum", s.Name + "_count"}
		}
		for _, n := range names {
			if known[n] == nil {
				known[n] = map[string]bool{}
			}
			for l := range s.Labels {
				known[n][l] = true
			}
			if strings.HasSuffix(n, "_bucket") {
				known[n]["le"] = true
			}
		}
	}
	add(metrics.Counter, "nodepool.provider.p.leaked.instances")
	known["nodepool_provider_nodes_deleted_total"] = map[string]bool{"provider": true} // Prometheus only
	// Cloud API call timers are observed by the driver's task transport,
	// not mapped from a statsd key.
	for _, n := range []string{"_bucket", "_sum", "_count"} {
		known["nodepool_task_duration_seconds"+n] = map[string]bool{"provider": true, "call": true, "status": true, "le": n == "_bucket"}
	}
	add(metrics.Counter, "nodepool.image_update.i.p")
	add(metrics.Timer, "nodepool.image_update.i.p")
	add(metrics.Timer, "nodepool.dib_image_build.i.status.duration")
	add(metrics.Gauge, "nodepool.dib_image_build.i.status.rc")
	add(metrics.Gauge, "nodepool.dib_image_build.i.status.last_build")
	add(metrics.Gauge, "nodepool.dib_image_build.i.qcow2.size")
	add(metrics.Gauge, "nodepool.image_build_requests")
	known["up"] = map[string]bool{} // Prometheus' own

	vars := map[string]bool{"__rate_interval": true}
	for _, v := range d.Templating.List {
		vars[v.Name] = true
	}
	selector := regexp.MustCompile(`([a-zA-Z_:][a-zA-Z0-9_:]*)\{([^}]*)\}`)
	matcher := regexp.MustCompile(`([a-zA-Z_][a-zA-Z0-9_]*)\s*(=~|!~|!=|=)`)
	variable := regexp.MustCompile(`\$\{?([a-zA-Z_]+)`)
	ids := map[int]bool{}
	queries := 0
	for _, p := range d.Panels {
		require.False(t, ids[p.ID], "panel id %d is unique", p.ID)
		ids[p.ID] = true
		require.LessOrEqual(t, p.GridPos.X+p.GridPos.W, 24, p.Title)
		if p.Type == "row" {
			continue
		}
		require.NotEmpty(t, p.Targets, p.Title)
		for _, tg := range p.Targets {
			queries++
			sels := selector.FindAllStringSubmatch(tg.Expr, -1)
			require.NotEmpty(t, sels, "%s: %s", p.Title, tg.Expr)
			for _, m := range sels {
				labels, ok := known[m[1]]
				require.True(t, ok, "%s: series %s is not exported", p.Title, m[1])
				for _, lm := range matcher.FindAllStringSubmatch(m[2], -1) {
					l := lm[1]
					require.True(t, l == "job" || l == "instance" || labels[l], "%s: series %s has no label %s", p.Title, m[1], l)
				}
			}
			for _, v := range variable.FindAllStringSubmatch(tg.Expr, -1) {
				require.True(t, vars[v[1]], "%s: variable $%s is not defined", p.Title, v[1])
			}
		}
	}
	require.Greater(t, queries, 20)
}
