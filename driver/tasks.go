package driver

import (
	"net/http"
	"strings"
	"time"
)

// TaskRecorder is implemented by the Env.Services of the launcher and the
// builder: it records one cloud API call as upstream's
// nodepool.task.<provider>.<call> statistics (and their Prometheus
// series). Drivers reach it through TaskTransport.
type TaskRecorder interface {
	// TaskDone records one API call of provider: call names it (see
	// APICallName), status is the HTTP status (0 when the call got no
	// response) and d its duration.
	TaskDone(provider, call string, status int, d time.Duration)
}

// TaskTransport wraps base (http.DefaultTransport when nil) so that every
// request it sends is recorded by env.Services' TaskRecorder under
// provider and the call name that name returns for the request. When
// env.Services records no tasks, base is returned unchanged.
//
// A driver whose cloud SDK takes an *http.Client or an http.RoundTripper
// sets the wrapped transport there once per adapter; every API call is
// then timed without further code.
func TaskTransport(base http.RoundTripper, env Env, provider string, name func(*http.Request) string) http.RoundTripper {
	if base == nil {
		base = http.DefaultTransport
	}
	rec, ok := env.Services.(TaskRecorder)
	if !ok || rec == nil {
		return base
	}
	return &taskTransport{base: base, rec: rec, provider: provider, name: name}
}

type taskTransport struct {
	base     http.RoundTripper
	rec      TaskRecorder
	provider string
	name     func(*http.Request) string
}

// RoundTrip sends r and records the call.
func (t *taskTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	start := time.Now()
	resp, err := t.base.RoundTrip(r)
	status := 0
	if err == nil && resp != nil {
		status = resp.StatusCode
	}
	t.rec.TaskDone(t.provider, t.name(r), status, time.Since(start))
	return resp, err
}

// APICallName names an API call of a REST service the way upstream's
// OpenStack SDK names it in its statistics: "<service>.<METHOD>.<resource>",
// where path is the request's path relative to the service's endpoint and
// resource joins with "_" the path's collection names, leaving out the ids
// between them and a leading version segment ("v2.0"), with a collection
// followed by an id made singular ("servers/<id>" → "server"):
//
//	GET  servers/detail                → compute.GET.servers_detail
//	POST servers                       → compute.POST.servers
//	GET  servers/<id>/os-interface     → compute.GET.server_os-interface
//	GET  v2.0/ports.json               → network.GET.ports
//
// Dots and colons in the parts become underscores, as upstream
// normalises statsd names; an empty path is "discovery".
func APICallName(service, method, path string) string {
	path = strings.Trim(path, "/")
	path = strings.TrimSuffix(path, ".json")
	var parts []string
	for _, p := range strings.Split(path, "/") {
		if p != "" {
			parts = append(parts, p)
		}
	}
	var names []string
	switch {
	case len(parts) >= 2 && parts[len(parts)-1] == "detail":
		names = parts[len(parts)-2:]
	default:
		if len(parts) > 0 && len(parts[0]) > 1 && parts[0][0] == 'v' && parts[0][1] >= '0' && parts[0][1] <= '9' {
			parts = parts[1:]
		}
		for i := 0; i < len(parts); i += 2 {
			p := parts[i]
			if i+1 < len(parts) && strings.HasSuffix(p, "s") && !strings.HasSuffix(p, "is") {
				p = p[:len(p)-1]
			}
			names = append(names, p)
		}
	}
	if strings.HasSuffix(path, "tokens") {
		names = []string{"tokens"}
	}
	if len(names) == 0 {
		names = []string{"discovery"}
	}
	norm := strings.NewReplacer(".", "_", ":", "_")
	for i, n := range names {
		names[i] = norm.Replace(n)
	}
	return norm.Replace(service) + "." + method + "." + strings.Join(names, "_")
}
