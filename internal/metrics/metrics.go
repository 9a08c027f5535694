// Package metrics reports Nodepool's figures twice: as statsd UDP lines
// with upstream's dotted names, sent
// only when STATSD_HOST and/or STATSD_PORT is set, and as Prometheus
// series in a registry served by Handler, always.
//
// Every figure goes through a Reporter as a dotted statsd key plus a type
// (counter, timer, gauge). The key is matched against a table of upstream
// patterns; the variable segments become Prometheus labels with exactly
// the strings of the key (so user strings are normalised the same way).
// Counters get a _total suffix, timers become histograms in seconds:
//
//	statsd key (type)                                  Prometheus series
//	nodepool.launch.<result> (timer+counter)           nodepool_launch_total{provider,az,requestor,result}
//	nodepool.launch.provider.<p>.<result>              and nodepool_launch_duration_seconds{same labels},
//	nodepool.launch.provider.<p>.<az>.<result>         one event per launch attempt for all four keys
//	nodepool.launch.requestor.<r>.<result>             (see Launch)
//	nodepool.nodes.<state> (gauge)                     nodepool_nodes{state}
//	nodepool.provider.<p>.nodes.<state> (gauge)        nodepool_provider_nodes{provider,state}
//	nodepool.label.<l>.nodes.<state> (gauge)           nodepool_label_nodes{label,state}
//	nodepool.provider.<p>.max_servers (gauge)          nodepool_provider_max_servers{provider}
//	nodepool.tenant_limits.<t>.<limit> (gauge)         nodepool_tenant_limit{tenant,limit}
//	nodepool.provider.<p>.leaked.<kind> (counter)      nodepool_provider_leaked_total{provider,kind}
//	nodepool.task.<p>.<call>.<status> (timer+counter)  nodepool_task_duration_seconds{provider,call,status}
//	nodepool.task.<p>.<call>.attempted|failed (counter)   (see Task)
//	nodepool.dib_image_build.<i>.<fmt>.size (gauge)    nodepool_dib_image_build_size_bytes{image,format}
//	nodepool.dib_image_build.<i>.status.duration (timer) nodepool_dib_image_build_duration_seconds{image}
//	nodepool.dib_image_build.<i>.status.rc (gauge)     nodepool_dib_image_build_rc{image}
//	nodepool.dib_image_build.<i>.status.last_build     nodepool_dib_image_build_last_build_timestamp_seconds{image}
//	nodepool.image_update.<i>.<p> (timer+counter)      nodepool_image_update_total{image,provider},
//	                                                   nodepool_image_update_duration_seconds{image,provider}
//	nodepool.image_build_requests (gauge)              nodepool_image_build_requests
//	anything else                                      the key with [^a-zA-Z0-9_] → _ (+_total / _duration_seconds)
//
// The four launch keys are projections of one event: Launch sends all of
// them to statsd and records a single Prometheus observation carrying every
// label (absent AZ or requestor = ""), so sums over the family count each
// attempt once. A launch key given to Incr or Timing fills only the labels
// it names. <result> is "ready" or "error.<x>". In a key with a dotted
// provider, label or image name, the first variable segment takes the
// extra dots.
//
// Infinite gauge values (unset limits) are sent to statsd as "inf", as the
// reference client sends them; Prometheus gets +Inf. Deleted nodes are
// counted in Prometheus only (DeletedNode), since the statsd key they
// would take is a node-state gauge. docs/metrics.md lists every key.
package metrics

import (
	"fmt"
	"math"
	"net"
	"net/http"
	"os"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// MaxPacket is the largest statsd datagram a batch sends (the reference
// client's pipeline buffer size).
const MaxPacket = 512

// DurationBuckets are the histogram buckets (seconds) of every timer.
var DurationBuckets = []float64{0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1200, 1800, 3600, 7200, 14400, 28800}

// Kind is a figure's statsd type.
type Kind int

// Figure kinds.
const (
	Counter Kind = iota
	Timer
	Gauge
)

type family struct {
	kind    Kind
	pattern []string // literal segments or "{label}"
	result  bool     // the key ends with a launch result
	name    string
	labels  []string // the family's label names, in order
}

func fam(kind Kind, pattern, name string, labels ...string) family {
	f := family{kind: kind, name: name, labels: labels}
	segs := strings.Split(pattern, ".")
	if segs[len(segs)-1] == "{result}" {
		f.result = true
		segs = segs[:len(segs)-1]
	}
	f.pattern = segs
	return f
}

var launchLabels = []string{"provider", "az", "requestor", "result"}

func launchFamilies(kind Kind, name string) []family {
	return []family{
		fam(kind, "nodepool.launch.provider.{provider}.{az}.{result}", name, launchLabels...),
		fam(kind, "nodepool.launch.provider.{provider}.{result}", name, launchLabels...),
		fam(kind, "nodepool.launch.requestor.{requestor}.{result}", name, launchLabels...),
		fam(kind, "nodepool.launch.{result}", name, launchLabels...),
	}
}

// families is the mapping table, searched in order per kind.
var families = func() []family {
	fs := launchFamilies(Counter, "nodepool_launch_total")
	fs = append(fs, launchFamilies(Timer, "nodepool_launch_duration_seconds")...)
	return append(fs,
		fam(Counter, "nodepool.provider.{provider}.leaked.{kind}", "nodepool_provider_leaked_total", "provider", "kind"),
		fam(Counter, "nodepool.image_update.{image}.{provider}", "nodepool_image_update_total", "image", "provider"),
		fam(Timer, "nodepool.image_update.{image}.{provider}", "nodepool_image_update_duration_seconds", "image", "provider"),
		fam(Timer, "nodepool.dib_image_build.{image}.status.duration", "nodepool_dib_image_build_duration_seconds", "image"),
		fam(Gauge, "nodepool.nodes.{state}", "nodepool_nodes", "state"),
		fam(Gauge, "nodepool.provider.{provider}.nodes.{state}", "nodepool_provider_nodes", "provider", "state"),
		fam(Gauge, "nodepool.label.{label}.nodes.{state}", "nodepool_label_nodes", "label", "state"),
		fam(Gauge, "nodepool.provider.{provider}.max_servers", "nodepool_provider_max_servers", "provider"),
		fam(Gauge, "nodepool.tenant_limits.{tenant}.{limit}", "nodepool_tenant_limit", "tenant", "limit"),
		fam(Gauge, "nodepool.dib_image_build.{image}.status.rc", "nodepool_dib_image_build_rc", "image"),
		fam(Gauge, "nodepool.dib_image_build.{image}.status.last_build", "nodepool_dib_image_build_last_build_timestamp_seconds", "image"),
		fam(Gauge, "nodepool.dib_image_build.{image}.{format}.size", "nodepool_dib_image_build_size_bytes", "image", "format"),
		fam(Gauge, "nodepool.image_build_requests", "nodepool_image_build_requests"),
	)
}()

// match returns the label values of key for f, or false.
func (f *family) match(segs []string) (map[string]string, bool) {
	vals := map[string]string{}
	if f.result {
		n := len(segs)
		switch {
		case n >= 2 && segs[n-2] == "error":
			vals["result"] = "error." + segs[n-1]
			segs = segs[:n-2]
		case n >= 1:
			vals["result"] = segs[n-1]
			segs = segs[:n-1]
		default:
			return nil, false
		}
	}
	extra := len(segs) - len(f.pattern)
	if extra < 0 {
		return nil, false
	}
	i := 0
	greedy := true
	for _, p := range f.pattern {
		if i >= len(segs) {
			return nil, false
		}
		if strings.HasPrefix(p, "{") {
			n := 1
			if greedy {
				n += extra
				extra, greedy = 0, false
			}
			vals[p[1:len(p)-1]] = strings.Join(segs[i:i+n], ".")
			i += n
			continue
		}
		if segs[i] != p {
			return nil, false
		}
		i++
	}
	if i != len(segs) || extra != 0 {
		return nil, false
	}
	return vals, true
}

var unsafeName = regexp.MustCompile(`[^a-zA-Z0-9_]`)

// Series is the Prometheus name and labels a statsd key maps to.
type Series struct {
	Name   string
	Labels prometheus.Labels
}

// Map returns the Prometheus series a statsd key of the given kind is
// mirrored into.
func Map(kind Kind, key string) Series {
	segs := strings.Split(key, ".")
	for i := range families {
		f := &families[i]
		if f.kind != kind {
			continue
		}
		vals, ok := f.match(segs)
		if !ok {
			continue
		}
		s := Series{Name: f.name, Labels: prometheus.Labels{}}
		for _, l := range f.labels {
			s.Labels[l] = vals[l]
		}
		return s
	}
	name := unsafeName.ReplaceAllString(key, "_")
	if name == "" || (name[0] >= '0' && name[0] <= '9') {
		name = "_" + name
	}
	switch kind {
	case Counter:
		name += "_total"
	case Timer:
		name += "_duration_seconds"
	}
	return Series{Name: name, Labels: prometheus.Labels{}}
}

// StatsdAddrFromEnv returns the statsd address configured by STATSD_HOST
// and STATSD_PORT (defaults localhost and 8125), and whether either is set.
func StatsdAddrFromEnv() (string, bool) {
	host, port := os.Getenv("STATSD_HOST"), os.Getenv("STATSD_PORT")
	if host == "" && port == "" {
		return "", false
	}
	if host == "" {
		host = "localhost"
	}
	if port == "" {
		port = "8125"
	}
	return net.JoinHostPort(host, port), true
}

// Reporter sends figures to statsd (when configured) and mirrors them in a
// Prometheus registry. It is safe for concurrent use.
type Reporter struct {
	addr string
	conn net.Conn
	err  error
	reg  *prometheus.Registry

	mu   sync.Mutex
	vecs map[string]prometheus.Collector // by Prometheus name
}

// Option configures a Reporter.
type Option func(*Reporter)

// WithStatsd sends statsd lines to addr ("host:port"); "" disables statsd.
func WithStatsd(addr string) Option { return func(r *Reporter) { r.addr = addr } }

// New returns a Reporter; without WithStatsd it only fills the registry.
func New(opts ...Option) *Reporter {
	r := &Reporter{vecs: map[string]prometheus.Collector{}}
	for _, o := range opts {
		o(r)
	}
	if r.reg == nil {
		r.reg = prometheus.NewRegistry()
		r.reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	}
	if r.addr != "" {
		r.conn, r.err = net.Dial("udp", r.addr)
	}
	return r
}

// FromEnv returns a Reporter that sends to statsd when STATSD_HOST or
// STATSD_PORT is set (read now, not at process start).
func FromEnv(opts ...Option) *Reporter {
	if addr, ok := StatsdAddrFromEnv(); ok {
		opts = append([]Option{WithStatsd(addr)}, opts...)
	}
	return New(opts...)
}

// StatsdEnabled reports whether statsd is configured.
func (r *Reporter) StatsdEnabled() bool { return r.addr != "" }

// Err returns the error of setting up the statsd socket, if any.
func (r *Reporter) Err() error { return r.err }

// Registry returns the Prometheus registry the figures are mirrored into.
func (r *Reporter) Registry() *prometheus.Registry { return r.reg }

// Handler serves the registry in the Prometheus exposition formats.
func (r *Reporter) Handler() http.Handler {
	return promhttp.HandlerFor(r.reg, promhttp.HandlerOpts{Registry: r.reg})
}

// Close closes the statsd socket.
func (r *Reporter) Close() error {
	if r.conn != nil {
		return r.conn.Close()
	}
	return nil
}

// Incr adds one to a counter.
func (r *Reporter) Incr(key string) { b := r.Batch(true); b.Incr(key); b.Send() }

// Timing records a timer.
func (r *Reporter) Timing(key string, d time.Duration) {
	b := r.Batch(true)
	b.Timing(key, d)
	b.Send()
}

// Gauge sets a gauge.
func (r *Reporter) Gauge(key string, v float64) { b := r.Batch(true); b.Gauge(key, v); b.Send() }

// Launch records one launch attempt's result: a timer
// and a counter for nodepool.launch.<result> and its provider, provider+AZ
// (when az is set) and requestor (when set) variants, in one batch, and a
// single Prometheus observation. requestor is normalised as upstream does.
func (r *Reporter) Launch(provider, az, requestor, result string, d time.Duration) {
	requestor = Normalize(requestor)
	keys := []string{"nodepool.launch." + result, "nodepool.launch.provider." + provider + "." + result}
	if az != "" {
		keys = append(keys, "nodepool.launch.provider."+provider+"."+az+"."+result)
	}
	if requestor != "" {
		keys = append(keys, "nodepool.launch.requestor."+requestor+"."+result)
	}
	b := r.Batch(true)
	for _, k := range keys {
		b.line(k, timerValue(d))
		b.line(k, "1|c")
	}
	b.Send()
	labels := prometheus.Labels{"provider": provider, "az": az, "requestor": requestor, "result": result}
	r.counter("nodepool_launch_total", labels).Inc()
	r.observer("nodepool_launch_duration_seconds", labels).Observe(d.Seconds())
}

// Task records one cloud API call as upstream's OpenStack SDK reports it:
// with K = nodepool.task.<provider>.<call>, a timer and a counter
// K.<status> and a counter K.attempted, or, without a response (status 0),
// counters K.failed and K.attempted. Prometheus gets one observation of
// nodepool_task_duration_seconds{provider,call,status} (status "failed"
// without a response).
func (r *Reporter) Task(provider, call string, status int, d time.Duration) {
	key := "nodepool.task." + provider + "." + call
	label := "failed"
	b := r.Batch(true)
	if status > 0 {
		label = strconv.Itoa(status)
		b.line(key+"."+label, timerValue(d))
		b.line(key+"."+label, "1|c")
	} else {
		b.line(key+".failed", "1|c")
	}
	b.line(key+".attempted", "1|c")
	b.Send()
	r.observer("nodepool_task_duration_seconds", prometheus.Labels{"provider": provider, "call": call, "status": label}).Observe(d.Seconds())
}

// DeletedNode counts one node deleted by the provider, in Prometheus only
// (nodepool_provider_nodes_deleted_total{provider}): statsd's
// nodepool.provider.<p>.nodes.deleted is the node-state gauge.
func (r *Reporter) DeletedNode(provider string) {
	r.counter("nodepool_provider_nodes_deleted_total", prometheus.Labels{"provider": provider}).Inc()
}

// Normalize replaces "." and ":" with "_", as upstream does for user
// strings in keys (requestors, tenants, limit names).
func Normalize(s string) string { return strings.NewReplacer(".", "_", ":", "_").Replace(s) }

// Batch collects figures of one event and sends them to statsd as few
// datagrams (at most MaxPacket bytes, newline separated), like the
// reference client's pipeline. Prometheus is updated as figures are added.
type Batch struct {
	r      *Reporter
	statsd bool
	lines  []string
}

// Batch starts a batch; with toStatsd false the figures only reach
// Prometheus.
func (r *Reporter) Batch(toStatsd bool) *Batch {
	return &Batch{r: r, statsd: toStatsd && r.conn != nil}
}

// Incr adds one to a counter.
func (b *Batch) Incr(key string) {
	b.line(key, "1|c")
	s := Map(Counter, key)
	b.r.counter(s.Name, s.Labels).Inc()
}

// Timing records a timer.
func (b *Batch) Timing(key string, d time.Duration) {
	b.line(key, timerValue(d))
	s := Map(Timer, key)
	b.r.observer(s.Name, s.Labels).Observe(d.Seconds())
}

// Gauge sets a gauge.
func (b *Batch) Gauge(key string, v float64) {
	switch {
	case math.IsNaN(v):
		b.line(key, "nan|g")
	case math.IsInf(v, 1):
		b.line(key, "inf|g")
	case v < 0:
		// A leading "-" means a delta in statsd: reset to 0 first.
		b.line(key, "0|g")
		b.line(key, formatFloat(v)+"|g")
	default:
		b.line(key, formatFloat(v)+"|g")
	}
	s := Map(Gauge, key)
	b.r.gauge(s.Name, s.Labels).Set(v)
}

func (b *Batch) line(key, value string) {
	if b.statsd {
		b.lines = append(b.lines, key+":"+value)
	}
}

// Send transmits the batch's statsd lines.
func (b *Batch) Send() {
	if !b.statsd || len(b.lines) == 0 {
		return
	}
	var buf []byte
	for _, l := range b.lines {
		if len(buf) > 0 && len(buf)+1+len(l) > MaxPacket {
			_, _ = b.r.conn.Write(buf)
			buf = buf[:0]
		}
		if len(buf) > 0 {
			buf = append(buf, '\n')
		}
		buf = append(buf, l...)
	}
	_, _ = b.r.conn.Write(buf)
	b.lines = nil
}

// timerValue formats milliseconds as the reference client does.
func timerValue(d time.Duration) string {
	return fmt.Sprintf("%0.6f|ms", float64(d.Milliseconds()))
}

// formatFloat formats v as Python's str() of a float or int does for the
// values gauges take ("inf" and "-inf" for the infinities).
func formatFloat(v float64) string {
	switch {
	case math.IsInf(v, 1):
		return "inf"
	case math.IsInf(v, -1):
		return "-inf"
	}
	return strconv.FormatFloat(v, 'f', -1, 64)
}

func labelNames(l prometheus.Labels) []string {
	names := make([]string, 0, len(l))
	for n := range l {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// vec returns the collector registered under name, creating it with mk.
// A name that cannot be registered gets an unregistered collector, so
// the figure only reaches statsd.
func (r *Reporter) vec(name string, mk func() prometheus.Collector) prometheus.Collector {
	r.mu.Lock()
	defer r.mu.Unlock()
	if c, ok := r.vecs[name]; ok {
		return c
	}
	c := mk()
	_ = r.reg.Register(c)
	r.vecs[name] = c
	return c
}

func help(name string) string { return "Nodepool figure " + name + " (mirrors the statsd key)." }

func (r *Reporter) counter(name string, l prometheus.Labels) prometheus.Counter {
	c := r.vec(name, func() prometheus.Collector {
		return prometheus.NewCounterVec(prometheus.CounterOpts{Name: name, Help: help(name)}, labelNames(l))
	})
	if v, ok := c.(*prometheus.CounterVec); ok {
		if m, err := v.GetMetricWith(l); err == nil {
			return m
		}
	}
	return prometheus.NewCounter(prometheus.CounterOpts{Name: name, Help: help(name)})
}

func (r *Reporter) gauge(name string, l prometheus.Labels) prometheus.Gauge {
	c := r.vec(name, func() prometheus.Collector {
		return prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: name, Help: help(name)}, labelNames(l))
	})
	if v, ok := c.(*prometheus.GaugeVec); ok {
		if m, err := v.GetMetricWith(l); err == nil {
			return m
		}
	}
	return prometheus.NewGauge(prometheus.GaugeOpts{Name: name, Help: help(name)})
}

func (r *Reporter) observer(name string, l prometheus.Labels) prometheus.Observer {
	c := r.vec(name, func() prometheus.Collector {
		return prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: name, Help: help(name), Buckets: DurationBuckets}, labelNames(l))
	})
	if v, ok := c.(*prometheus.HistogramVec); ok {
		if m, err := v.GetMetricWith(l); err == nil {
			return m
		}
	}
	return prometheus.NewHistogram(prometheus.HistogramOpts{Name: name, Help: help(name)})
}
