// Package webapp is the read-only web status API of the launcher: the
// status listings as text tables or JSON, chosen by the Accept header,
// cached for one second (bounded in entries and bytes), plus a readiness
// probe; NewServer and ListenAndServe serve it with idle and connection
// limits.
package webapp

import (
	"context"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/nodepool-go/nodepool/internal/status"
	"github.com/nodepool-go/nodepool/zkclient"
)

// CacheExpiry is how long a computed result is served unchanged.
const CacheExpiry = time.Second

// Content types of the responses.
const (
	ContentTypeText = "text/plain; charset=UTF-8"
	ContentTypeJSON = "application/json"
)

// Handler serves the status API.
type Handler struct {
	src     *status.Source
	ready   func() bool
	now     func() time.Time
	metrics http.Handler
	page    http.Handler

	cache     *responseCache
	producing chan struct{} // MaxProducing slots
}

// Option configures a Handler.
type Option func(*Handler)

// WithClock makes the handler read the time from now (ages, caching).
func WithClock(now func() time.Time) Option {
	return func(h *Handler) { h.now = now; h.src.Now = now }
}

// WithMetrics serves m (the Prometheus exposition) at /metrics.
func WithMetrics(m http.Handler) Option { return func(h *Handler) { h.metrics = m } }

// WithPage serves page (the HTML status page) for the paths the API does
// not answer, / among them.
func WithPage(page http.Handler) Option { return func(h *Handler) { h.page = page } }

// New returns the status API handler reading from zk. ready reports
// whether the launcher finished its first main-loop iteration; nil means
// always ready.
func New(zk *zkclient.Client, ready func() bool, opts ...Option) *Handler {
	h := &Handler{
		src:       &status.Source{ZK: zk},
		ready:     ready,
		now:       time.Now,
		cache:     newResponseCache(CacheMaxEntries, CacheMaxBytes),
		producing: make(chan struct{}, MaxProducing),
	}
	for _, o := range opts {
		o(h)
	}
	return h
}

type producer func(h *Handler, ctx context.Context, q url.Values) (*status.Table, error)

var endpoints = map[string]producer{
	"/image-list": func(h *Handler, ctx context.Context, _ url.Values) (*status.Table, error) {
		return h.src.ImageList(ctx)
	},
	"/dib-image-list": func(h *Handler, ctx context.Context, _ url.Values) (*status.Table, error) {
		return h.src.DibImageList(ctx)
	},
	"/image-status": func(h *Handler, ctx context.Context, _ url.Values) (*status.Table, error) {
		return h.src.ImageStatus(ctx)
	},
	"/node-list": func(h *Handler, ctx context.Context, q url.Values) (*status.Table, error) {
		return h.src.NodeList(ctx, q.Get("node_id"))
	},
	"/request-list": func(h *Handler, ctx context.Context, _ url.Values) (*status.Table, error) {
		return h.src.RequestList(ctx)
	},
	"/label-list": func(h *Handler, ctx context.Context, _ url.Values) (*status.Table, error) {
		return h.src.LabelList(ctx)
	},
	// Go addition: why each waiting request waits, per launcher pool.
	"/request-explain": func(h *Handler, ctx context.Context, q url.Values) (*status.Table, error) {
		return h.src.RequestExplain(ctx, q.Get("request_id"))
	},
}

// ServeHTTP implements http.Handler.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "Method Not Allowed", http.StatusMethodNotAllowed)
		return
	}
	if r.URL.Path == "/metrics" && h.metrics != nil {
		h.metrics.ServeHTTP(w, r)
		return
	}
	wantJSON := Negotiate(r.Header.Values("Accept")) == ContentTypeJSON
	if r.URL.Path == "/ready" {
		h.serveReady(w, wantJSON)
		return
	}
	prod, ok := endpoints[r.URL.Path]
	if !ok && h.page != nil {
		h.page.ServeHTTP(w, r)
		return
	}
	if !ok {
		http.NotFound(w, r)
		return
	}
	q := r.URL.Query()
	key := cacheKey(r.URL.Path, q, wantJSON)
	e := h.cache.get(key, h.now())
	if e == nil {
		var err error
		if e, err = h.produce(r.Context(), prod, key, q, wantJSON); err != nil {
			http.Error(w, "Internal Server Error: "+err.Error(), http.StatusInternalServerError)
			return
		}
	}
	hd := w.Header()
	hd.Set("Access-Control-Allow-Origin", "*")
	hd.Set("Cache-Control", "public, max-age="+strconv.Itoa(int(CacheExpiry/time.Second)))
	hd.Set("Last-Modified", e.modified.UTC().Format(http.TimeFormat))
	hd.Set("Expires", e.modified.Add(CacheExpiry).UTC().Format(http.TimeFormat))
	if ims := r.Header.Get("If-Modified-Since"); ims != "" {
		if t, err := http.ParseTime(ims); err == nil && !e.modified.Truncate(time.Second).After(t) {
			w.WriteHeader(http.StatusNotModified)
			return
		}
	}
	if e.json {
		hd.Set("Content-Type", ContentTypeJSON)
	} else {
		hd.Set("Content-Type", ContentTypeText)
	}
	hd.Set("Content-Length", strconv.Itoa(len(e.body)))
	w.WriteHeader(http.StatusOK)
	if r.Method != http.MethodHead {
		_, _ = w.Write(e.body)
	}
}

// produce computes a response, at most MaxProducing at once, and caches
// it. A request that waited for its turn takes the entry another one
// computed meanwhile.
func (h *Handler) produce(ctx context.Context, prod producer, key string, q url.Values, wantJSON bool) (*entry, error) {
	select {
	case h.producing <- struct{}{}:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	defer func() { <-h.producing }()
	now := h.now()
	if e := h.cache.get(key, now); e != nil {
		return e, nil
	}
	t, err := prod(h, ctx, q)
	if err != nil {
		return nil, err
	}
	e := &entry{key: key, json: wantJSON, modified: now}
	if wantJSON {
		e.body = t.JSON()
	} else {
		if f := q.Get("fields"); f != "" {
			t = t.Select(strings.Split(f, ","))
		}
		e.body = []byte(t.Text())
	}
	h.cache.put(e)
	return e, nil
}

func (h *Handler) serveReady(w http.ResponseWriter, wantJSON bool) {
	if h.ready != nil && !h.ready() {
		http.Error(w, "Service Unavailable", http.StatusServiceUnavailable)
		return
	}
	if wantJSON {
		w.Header().Set("Content-Type", ContentTypeJSON)
	} else {
		w.Header().Set("Content-Type", ContentTypeText)
	}
	_, _ = w.Write([]byte("OK"))
}

// offers are the media types the API can produce, in preference order.
var offers = []string{"text/html", "text/plain", ContentTypeJSON}

// Negotiate picks the offer (text/html, text/plain, application/json) with
// the highest q-value in the Accept header values; ties go to the earlier
// offer. No header selects text/html; nothing acceptable selects
// text/plain.
func Negotiate(accept []string) string {
	ranges := parseAccept(strings.Join(accept, ","))
	if len(ranges) == 0 {
		return offers[0]
	}
	best, bestQ := "", 0.0
	for _, o := range offers {
		q := offerQ(o, ranges)
		if q > bestQ {
			best, bestQ = o, q
		}
	}
	if best == "" {
		return "text/plain"
	}
	return best
}

type mediaRange struct {
	typ, sub string
	params   int
	q        float64
}

func parseAccept(h string) []mediaRange {
	var out []mediaRange
	for _, part := range strings.Split(h, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		fields := strings.Split(part, ";")
		mt := strings.ToLower(strings.TrimSpace(fields[0]))
		typ, sub, ok := strings.Cut(mt, "/")
		if !ok {
			if mt != "*" {
				continue
			}
			typ, sub = "*", "*"
		}
		mr := mediaRange{typ: typ, sub: sub, q: 1}
		for _, p := range fields[1:] {
			k, v, _ := strings.Cut(strings.TrimSpace(p), "=")
			if strings.EqualFold(strings.TrimSpace(k), "q") {
				if f, err := strconv.ParseFloat(strings.TrimSpace(v), 64); err == nil {
					mr.q = f
				}
			} else {
				mr.params++
			}
		}
		out = append(out, mr)
	}
	return out
}

// offerQ returns the q-value of the most specific range matching offer.
func offerQ(offer string, ranges []mediaRange) float64 {
	typ, sub, _ := strings.Cut(offer, "/")
	bestSpec, q := -1, 0.0
	for _, r := range ranges {
		spec := -1
		switch {
		case r.typ == typ && r.sub == sub:
			spec = 2
		case r.typ == typ && r.sub == "*":
			spec = 1
		case r.typ == "*" && r.sub == "*":
			spec = 0
		}
		if spec < 0 {
			continue
		}
		spec = spec*100 + r.params
		if spec > bestSpec {
			bestSpec, q = spec, r.q
		}
	}
	return q
}
