// Package fakekube is an in-process fake of the parts of the Kubernetes
// and OpenShift APIs the kubernetes, openshift and openshiftpods drivers
// use, served over real HTTPS so that client-go talks to it unchanged.
//
// It keeps namespaces, service accounts, secrets, roles, role bindings and
// pods (and OpenShift's projects, project requests and role bindings as
// views of namespaces) as JSON objects with resourceVersions, answers
// with the API server's Status error bodies (404 NotFound, 409
// AlreadyExists, 403 Forbidden), and moves objects through time as the
// cluster does: a deleted namespace is Terminating (with everything in it)
// for NamespaceDeleteDelay, a service-account token secret gets its token
// and CA after TokenDelay, a pod is Pending and runs after PodStartDelay.
// A pod whose image ends in ":missing" fails to pull (ErrImagePull, then
// ImagePullBackOff); one whose node-selector the fake node does not match
// stays Pending, unschedulable. Per-namespace pod quotas refuse pods as
// the ResourceQuota admission does, and Inject adds faults (any status
// code, 429 with Retry-After, slow answers) to matching calls.
package fakekube

import (
	"crypto/tls"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
)

// Token is the bearer token the fake accepts.
const Token = "fake-admin-token"

// Server is one fake cluster.
type Server struct {
	srv *httptest.Server

	// Delays of the cluster's asynchronous work; set them before use.
	TokenDelay           time.Duration
	PodStartDelay        time.Duration
	PodDeleteDelay       time.Duration
	NamespaceDeleteDelay time.Duration
	// NodeLabels are the labels of the cluster's one node ("fake-node-1").
	NodeLabels map[string]string
	// OpenShift makes service accounts get a token secret of their own
	// (listed in their secrets) as OpenShift's controller does.
	OpenShift bool

	mu       sync.Mutex
	objs     map[string]*obj // by resource/namespace/name
	rv       int64
	podQuota map[string]int // namespace → max pods
	faults   []*Fault
	calls    atomic.Int64
	byKind   map[string]int
}

type obj struct {
	res, ns, name string
	data          map[string]any
	created       time.Time
	deleted       time.Time // zero while live
}

// Fault is an injected failure of the calls whose method and path match.
type Fault struct {
	Method string        // "" matches any
	Path   string        // substring of the URL path ("" matches any)
	Code   int           // status code to answer (0: answer normally after Delay)
	Reason string        // Status reason, e.g. "Forbidden", "TooManyRequests"
	Msg    string        // Status message
	Delay  time.Duration // wait before answering
	Times  int           // how many calls it hits; 0 = every call
	hits   int
}

// Hits returns how many calls the fault answered.
func (f *Fault) Hits(s *Server) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return f.hits
}

// New starts a fake cluster with small delays; Close stops it.
func New() *Server {
	s := &Server{
		TokenDelay: 50 * time.Millisecond, PodStartDelay: 100 * time.Millisecond,
		PodDeleteDelay: 50 * time.Millisecond, NamespaceDeleteDelay: 100 * time.Millisecond,
		NodeLabels: map[string]string{"kubernetes.io/hostname": "fake-node-1"},
		objs:       map[string]*obj{}, podQuota: map[string]int{}, byKind: map[string]int{},
	}
	s.srv = httptest.NewTLSServer(http.HandlerFunc(s.serve))
	return s
}

// URL is the API server's address.
func (s *Server) URL() string { return s.srv.URL }

// Close stops the server.
func (s *Server) Close() { s.srv.Close() }

// CAData returns the PEM certificate clients must trust.
func (s *Server) CAData() []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: s.srv.Certificate().Raw})
}

// WriteKubeconfig writes a kubeconfig file with one context (and cluster
// and user) per entry, named by the map key, using clientcmd's writer.
// The first context in sorted order is the current one.
func WriteKubeconfig(path string, contexts map[string]*Server) error {
	cfg := clientcmdapi.NewConfig()
	for name, s := range contexts {
		cfg.Clusters[name] = &clientcmdapi.Cluster{Server: s.URL(), CertificateAuthorityData: s.CAData()}
		cfg.AuthInfos[name] = &clientcmdapi.AuthInfo{Token: Token}
		cfg.Contexts[name] = &clientcmdapi.Context{Cluster: name, AuthInfo: name}
		if cfg.CurrentContext == "" || name < cfg.CurrentContext {
			cfg.CurrentContext = name
		}
	}
	return clientcmd.WriteToFile(*cfg, path)
}

// TLSConfig returns a client TLS configuration trusting the fake.
func (s *Server) TLSConfig() *tls.Config {
	return s.srv.Client().Transport.(*http.Transport).TLSClientConfig
}

// Inject adds a fault.
func (s *Server) Inject(f *Fault) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults = append(s.faults, f)
}

// ClearFaults removes every fault.
func (s *Server) ClearFaults() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults = nil
}

// SetPodQuota limits the pods of a namespace, as a ResourceQuota would.
func (s *Server) SetPodQuota(ns string, pods int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.podQuota[ns] = pods
}

// Calls returns the number of API calls answered so far.
func (s *Server) Calls() int64 { return s.calls.Load() }

// CallsBy returns the calls per "METHOD resource" (resource being the
// plural name, e.g. "GET pods", "POST namespaces").
func (s *Server) CallsBy() map[string]int {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[string]int, len(s.byKind))
	for k, v := range s.byKind {
		out[k] = v
	}
	return out
}

// AddNamespace creates a namespace directly (a project for openshiftpods,
// or an object a test wants to find), with labels.
func (s *Server) AddNamespace(name string, labels map[string]string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.put("namespaces", "", name, map[string]any{"metadata": map[string]any{"name": name, "labels": strMap(labels)}})
}

// Names returns the names of the live (not deleting) objects of a resource
// in a namespace ("" for cluster-scoped ones), sorted.
func (s *Server) Names(res, ns string) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.advance()
	var out []string
	for _, o := range s.sorted() {
		if o.res == res && o.ns == ns && o.deleted.IsZero() {
			out = append(out, o.name)
		}
	}
	return out
}

// Exists reports whether an object exists (possibly being deleted).
func (s *Server) Exists(res, ns, name string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.advance()
	return s.objs[key(res, ns, name)] != nil
}

func key(res, ns, name string) string { return res + "/" + ns + "/" + name }

func strMap(m map[string]string) map[string]any {
	out := make(map[string]any, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

// status writes a Status error body as the API server does.
func status(w http.ResponseWriter, code int, reason, format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(map[string]any{
		"kind": "Status", "apiVersion": "v1", "metadata": map[string]any{},
		"status": "Failure", "message": msg, "reason": reason, "code": code,
	})
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}

// fault returns the first fault matching the request, counting its hit.
func (s *Server) fault(r *http.Request) *Fault {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, f := range s.faults {
		if (f.Method == "" || f.Method == r.Method) && strings.Contains(r.URL.Path, f.Path) && (f.Times == 0 || f.hits < f.Times) {
			f.hits++
			return f
		}
	}
	return nil
}

func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	s.calls.Add(1)
	if r.Header.Get("Authorization") != "Bearer "+Token {
		status(w, http.StatusUnauthorized, "Unauthorized", "Unauthorized")
		return
	}
	if f := s.fault(r); f != nil {
		if f.Delay > 0 {
			select {
			case <-time.After(f.Delay):
			case <-r.Context().Done():
				return
			}
		}
		if f.Code != 0 {
			if f.Code == http.StatusTooManyRequests {
				w.Header().Set("Retry-After", "1")
			}
			status(w, f.Code, f.Reason, "%s", f.Msg)
			return
		}
	}
	s.route(w, r)
}

// Object returns a copy of an object as the API serves it (nil when
// absent).
func (s *Server) Object(res, ns, name string) map[string]any {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.advance()
	o := s.objs[key(res, ns, name)]
	if o == nil {
		return nil
	}
	b, _ := json.Marshal(o.data)
	var out map[string]any
	_ = json.Unmarshal(b, &out)
	return out
}
