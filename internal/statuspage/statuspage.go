// Package statuspage is the launcher's HTML status page, served by the web
// status API next to its listings: nodes per provider and state, each
// pool's and tenant's quota use, the request queue with why each request
// waits, image builds and uploads, and the launcher's own health.
//
// The page at / is rendered on the server (html/template), so it shows a
// snapshot with JavaScript off; a small script then refreshes it every few
// seconds from /status.json, the same snapshot as JSON. /node?id=… and
// /request?id=… show one node or request in full. The page only reads:
// nothing it serves can change state. Every string from ZooKeeper is
// user-controlled (labels, requestors, comments) and is escaped by the
// template or set as text by the script; the Content-Security-Policy
// forbids inline scripts besides.
package statuspage

import (
	"bytes"
	"context"
	"embed"
	"encoding/json"
	"errors"
	"html/template"
	"io/fs"
	"net/http"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/nodepool-go/nodepool/config"
	"github.com/nodepool-go/nodepool/zkclient"
)

// Source is what the page reads: a running launcher (*nodepool.Launcher
// implements it).
type Source interface {
	// ZooKeeper returns the launcher's client (nil before it connects).
	ZooKeeper() *zkclient.Client
	// Nodes returns the launcher's node cache (nil before it exists).
	Nodes() *zkclient.TreeCache[*zkclient.Node]
	// Config returns the configuration in effect.
	Config() *config.Config
	// Ready reports whether the launcher finished its start-up pass.
	Ready() bool
	// LastCleanup returns when the last cleanup pass ended (zero: never).
	LastCleanup() time.Time
}

// CacheExpiry is how long a computed snapshot is served unchanged, so that
// many open pages cost ZooKeeper one walk per second at most.
const CacheExpiry = time.Second

// collectTimeout bounds the ZooKeeper reads of one snapshot.
const collectTimeout = 10 * time.Second

// RefreshInterval is how often the page's script fetches a new snapshot.
const RefreshInterval = 5 * time.Second

// contentSecurityPolicy allows only the page's own script, style and
// JSON: markup injected through a ZooKeeper string could not run.
const contentSecurityPolicy = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; " +
	"connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

//go:embed templates/*.html static/*
var assets embed.FS

var pages = template.Must(template.New("").Funcs(template.FuncMap{
	"join":    func(v []string) string { return strings.Join(v, ", ") },
	"refresh": func() int { return int(RefreshInterval / time.Millisecond) },
}).ParseFS(assets, "templates/*.html"))

// Handler serves the status page, its assets, its JSON snapshot and the
// detail pages.
type Handler struct {
	src    Source
	now    func() time.Time
	static http.Handler

	mu   sync.Mutex
	snap *Snapshot
	at   time.Time
}

// Option configures a Handler.
type Option func(*Handler)

// WithClock makes the handler read the time from now (ages, caching).
func WithClock(now func() time.Time) Option { return func(h *Handler) { h.now = now } }

// New returns the status page handler reading from src.
func New(src Source, opts ...Option) *Handler {
	sub, err := fs.Sub(assets, "static")
	if err != nil {
		panic(err) // the embedded tree always has static/
	}
	h := &Handler{src: src, now: time.Now, static: http.StripPrefix("/static/", http.FileServerFS(sub))}
	for _, o := range opts {
		o(h)
	}
	return h
}

// ServeHTTP implements http.Handler for /, /status.json, /node, /request
// and /static/; any other path is not found.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "Method Not Allowed", http.StatusMethodNotAllowed)
		return
	}
	hd := w.Header()
	hd.Set("Content-Security-Policy", contentSecurityPolicy)
	hd.Set("X-Content-Type-Options", "nosniff")
	hd.Set("Referrer-Policy", "no-referrer")
	switch p := r.URL.Path; {
	case p == "/":
		h.render(w, "index", h.snapshot(r.Context()), http.StatusOK)
	case p == "/status.json":
		body, err := json.Marshal(h.snapshot(r.Context()))
		if err != nil {
			http.Error(w, "Internal Server Error", http.StatusInternalServerError)
			return
		}
		hd.Set("Content-Type", "application/json")
		hd.Set("Cache-Control", "no-cache")
		_, _ = w.Write(body)
	case p == "/node":
		h.serveNode(w, r)
	case p == "/request":
		h.serveRequest(w, r)
	case strings.HasPrefix(p, "/static/"):
		hd.Set("Cache-Control", "no-cache")
		h.static.ServeHTTP(w, r)
	default:
		http.NotFound(w, r)
	}
}

// snapshot returns the cached snapshot, computing a new one when it is
// older than CacheExpiry.
func (h *Handler) snapshot(ctx context.Context) *Snapshot {
	h.mu.Lock()
	defer h.mu.Unlock()
	now := h.now()
	if h.snap != nil && now.Sub(h.at) < CacheExpiry && !now.Before(h.at) {
		return h.snap
	}
	// The snapshot serves every client for a second: one client going
	// away must not cut it short for the others.
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), collectTimeout)
	defer cancel()
	h.snap, h.at = collect(cctx, h.src, now), now
	return h.snap
}

// render executes a page template into a buffer first, so a failure
// yields a clean error response instead of half a page.
func (h *Handler) render(w http.ResponseWriter, name string, data any, code int) {
	var buf bytes.Buffer
	if err := pages.ExecuteTemplate(&buf, name, data); err != nil {
		http.Error(w, "Internal Server Error", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-cache")
	w.WriteHeader(code)
	_, _ = w.Write(buf.Bytes())
}

// validID matches node and request ids: a ZooKeeper znode name without
// path separators.
var validID = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$`)

// detail is the data of a detail page.
type detail struct {
	Kind    string // "node" or "request"
	ID      string
	Found   bool
	Fields  []field
	Explain []Explanation
	Error   string
}

// field is one row of a detail page; Link, when set, is the kind of page
// each of Values links to.
type field struct {
	Name   string
	Values []string
	Link   string
}

func (h *Handler) lookup(w http.ResponseWriter, r *http.Request, kind string, get func(ctx context.Context, zk *zkclient.Client, d *detail) error) {
	id := r.URL.Query().Get("id")
	d := &detail{Kind: kind, ID: id}
	zk := h.src.ZooKeeper()
	code := http.StatusOK
	switch {
	case !validID.MatchString(id):
		d.Error, code = "no such "+kind, http.StatusNotFound
	case zk == nil:
		d.Error, code = "not connected to ZooKeeper yet", http.StatusServiceUnavailable
	default:
		err := get(r.Context(), zk, d)
		switch {
		case errors.Is(err, zkclient.ErrNoNode), errors.Is(err, zkclient.ErrEmpty):
			d.Error, code = "no such "+kind, http.StatusNotFound
		case err != nil:
			d.Error, code = "reading ZooKeeper failed: "+err.Error(), http.StatusInternalServerError
		default:
			d.Found = true
		}
	}
	h.render(w, "detail", d, code)
}
