package fakekube

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"time"
)

// route splits a path into (resource, namespace, name) and serves it.
// Known shapes: /api/v1/<res>[/<name>], /api/v1/namespaces/<ns>/<res>[/<name>]
// and the same under /apis/<group>/<version>.
func (s *Server) route(w http.ResponseWriter, r *http.Request) {
	parts := strings.Split(strings.Trim(r.URL.Path, "/"), "/")
	switch {
	case len(parts) >= 2 && parts[0] == "api":
		parts = parts[2:]
	case len(parts) >= 3 && parts[0] == "apis":
		parts = parts[3:]
	default:
		status(w, http.StatusNotFound, "NotFound", "the server could not find the requested resource")
		return
	}
	var res, ns, name string
	switch {
	case len(parts) >= 3 && parts[0] == "namespaces":
		ns, res = parts[1], parts[2]
		if len(parts) > 3 {
			name = parts[3]
		}
	case len(parts) == 2:
		res, name = parts[0], parts[1]
	case len(parts) == 1:
		res = parts[0]
	default:
		status(w, http.StatusNotFound, "NotFound", "the server could not find the requested resource")
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.byKind[r.Method+" "+res]++
	s.advance()
	asProject := res == "projects"
	switch res {
	case "projects":
		res = "namespaces" // a project is a view of its namespace
	case "projectrequests":
		if r.Method != http.MethodPost {
			status(w, http.StatusMethodNotAllowed, "MethodNotAllowed", "the server does not allow this method on the requested resource")
			return
		}
	}
	switch {
	case r.Method == http.MethodGet && name == "":
		s.list(w, r, res, ns, asProject)
	case r.Method == http.MethodGet:
		s.get(w, res, ns, name, asProject)
	case r.Method == http.MethodPost:
		s.create(w, r, res, ns)
	case r.Method == http.MethodDelete:
		s.remove(w, res, ns, name)
	case r.Method == http.MethodPatch:
		s.patch(w, r, res, ns, name)
	default:
		status(w, http.StatusMethodNotAllowed, "MethodNotAllowed", "the server does not allow this method on the requested resource")
	}
}

func (s *Server) sorted() []*obj {
	out := make([]*obj, 0, len(s.objs))
	for _, o := range s.objs {
		out = append(out, o)
	}
	sort.Slice(out, func(i, j int) bool {
		return key(out[i].res, out[i].ns, out[i].name) < key(out[j].res, out[j].ns, out[j].name)
	})
	return out
}

func meta(d map[string]any) map[string]any {
	m, ok := d["metadata"].(map[string]any)
	if !ok {
		m = map[string]any{}
		d["metadata"] = m
	}
	return m
}

// put stores an object with fresh metadata; s.mu is held.
func (s *Server) put(res, ns, name string, d map[string]any) *obj {
	s.rv++
	m := meta(d)
	m["name"] = name
	if ns != "" {
		m["namespace"] = ns
	}
	m["resourceVersion"] = strconv.FormatInt(s.rv, 10)
	m["uid"] = fmt.Sprintf("00000000-0000-0000-0000-%012d", s.rv)
	m["creationTimestamp"] = time.Now().UTC().Format(time.RFC3339)
	if res == "namespaces" {
		d["status"] = map[string]any{"phase": "Active"}
	}
	if d["kind"] == nil || d["kind"] == "" {
		d["kind"] = kindOf(res)
	}
	if d["apiVersion"] == nil || d["apiVersion"] == "" {
		d["apiVersion"] = apiVersionOf(res)
	}
	o := &obj{res: res, ns: ns, name: name, data: d, created: time.Now()}
	s.objs[key(res, ns, name)] = o
	return o
}

func (s *Server) touch(o *obj) {
	s.rv++
	meta(o.data)["resourceVersion"] = strconv.FormatInt(s.rv, 10)
}

func kindOf(res string) string {
	switch res {
	case "namespaces":
		return "Namespace"
	case "pods":
		return "Pod"
	case "secrets":
		return "Secret"
	case "serviceaccounts":
		return "ServiceAccount"
	case "roles":
		return "Role"
	case "rolebindings":
		return "RoleBinding"
	}
	return ""
}

func apiVersionOf(res string) string {
	if res == "roles" || res == "rolebindings" {
		return "rbac.authorization.k8s.io/v1"
	}
	return "v1"
}

func (s *Server) get(w http.ResponseWriter, res, ns, name string, asProject bool) {
	o := s.objs[key(res, ns, name)]
	if o == nil {
		status(w, http.StatusNotFound, "NotFound", "%s %q not found", res, name)
		return
	}
	writeJSON(w, http.StatusOK, view(o.data, asProject))
}

// view returns a namespace as the project API shows it.
func view(d map[string]any, asProject bool) map[string]any {
	if !asProject {
		return d
	}
	c := make(map[string]any, len(d))
	for k, v := range d {
		c[k] = v
	}
	c["kind"], c["apiVersion"] = "Project", "project.openshift.io/v1"
	return c
}

// matches evaluates an equality-only label selector ("a=b,c").
func matches(sel string, labels map[string]any) bool {
	for _, term := range strings.Split(sel, ",") {
		if term == "" {
			continue
		}
		k, v, eq := strings.Cut(term, "=")
		got, ok := labels[k]
		if !ok || (eq && got != v) {
			return false
		}
	}
	return true
}

func (s *Server) list(w http.ResponseWriter, r *http.Request, res, ns string, asProject bool) {
	sel := r.URL.Query().Get("labelSelector")
	items := []any{}
	for _, o := range s.sorted() {
		if o.res != res || (ns != "" && o.ns != ns) {
			continue
		}
		labels, _ := meta(o.data)["labels"].(map[string]any)
		if matches(sel, labels) {
			items = append(items, view(o.data, asProject))
		}
	}
	kind, apiVersion := kindOf(res)+"List", apiVersionOf(res)
	if asProject {
		kind, apiVersion = "ProjectList", "project.openshift.io/v1"
	}
	writeJSON(w, http.StatusOK, map[string]any{
		"kind": kind, "apiVersion": apiVersion,
		"metadata": map[string]any{"resourceVersion": strconv.FormatInt(s.rv, 10)}, "items": items,
	})
}

func (s *Server) create(w http.ResponseWriter, r *http.Request, res, ns string) {
	var d map[string]any
	if err := json.NewDecoder(r.Body).Decode(&d); err != nil {
		status(w, http.StatusBadRequest, "BadRequest", "decoding body: %v", err)
		return
	}
	name, _ := meta(d)["name"].(string)
	if name == "" {
		status(w, http.StatusUnprocessableEntity, "Invalid", "%s is invalid: metadata.name: Required value: name is required", kindOf(res))
		return
	}
	if res == "projectrequests" {
		// A project request makes a namespace; its labels are not carried over.
		res, d = "namespaces", map[string]any{"metadata": map[string]any{"name": name, "annotations": map[string]any{"openshift.io/requester": "admin"}}}
	}
	if ns != "" {
		space := s.objs[key("namespaces", "", ns)]
		if space == nil {
			status(w, http.StatusNotFound, "NotFound", "namespaces %q not found", ns)
			return
		}
		if !space.deleted.IsZero() {
			status(w, http.StatusForbidden, "Forbidden", "%s %q is forbidden: unable to create new content in namespace %s because it is being terminated", res, name, ns)
			return
		}
	}
	if old := s.objs[key(res, ns, name)]; old != nil {
		status(w, http.StatusConflict, "AlreadyExists", "%s %q already exists", res, name)
		return
	}
	if res == "pods" {
		if q, ok := s.podQuota[ns]; ok && s.livePods(ns) >= q {
			status(w, http.StatusForbidden, "Forbidden", "pods %q is forbidden: exceeded quota: compute-resources, requested: pods=1, used: pods=%d, limited: pods=%d", name, s.livePods(ns), q)
			return
		}
		d["status"] = map[string]any{"phase": "Pending"}
	}
	o := s.put(res, ns, name, d)
	writeJSON(w, http.StatusCreated, o.data)
}

func (s *Server) livePods(ns string) int {
	n := 0
	for _, o := range s.objs {
		if o.res == "pods" && o.ns == ns && o.deleted.IsZero() {
			n++
		}
	}
	return n
}

func (s *Server) remove(w http.ResponseWriter, res, ns, name string) {
	o := s.objs[key(res, ns, name)]
	if o == nil {
		status(w, http.StatusNotFound, "NotFound", "%s %q not found", res, name)
		return
	}
	switch {
	case res == "namespaces" || res == "pods":
		if o.deleted.IsZero() {
			o.deleted = time.Now()
			meta(o.data)["deletionTimestamp"] = o.deleted.UTC().Format(time.RFC3339)
			if res == "namespaces" {
				o.data["status"] = map[string]any{"phase": "Terminating"}
			}
			s.touch(o)
		}
		writeJSON(w, http.StatusOK, o.data)
	default:
		delete(s.objs, key(res, ns, name))
		writeJSON(w, http.StatusOK, map[string]any{"kind": "Status", "apiVersion": "v1", "status": "Success"})
	}
}

// patch applies a JSON merge patch of metadata labels.
func (s *Server) patch(w http.ResponseWriter, r *http.Request, res, ns, name string) {
	o := s.objs[key(res, ns, name)]
	if o == nil {
		status(w, http.StatusNotFound, "NotFound", "%s %q not found", res, name)
		return
	}
	var p map[string]any
	if err := json.NewDecoder(r.Body).Decode(&p); err != nil {
		status(w, http.StatusBadRequest, "BadRequest", "decoding patch: %v", err)
		return
	}
	if pl, ok := meta(p)["labels"].(map[string]any); ok {
		labels, _ := meta(o.data)["labels"].(map[string]any)
		if labels == nil {
			labels = map[string]any{}
		}
		for k, v := range pl {
			labels[k] = v
		}
		meta(o.data)["labels"] = labels
	}
	s.touch(o)
	writeJSON(w, http.StatusOK, o.data)
}

// advance applies the cluster's asynchronous work that is due; s.mu is
// held.
func (s *Server) advance() {
	now := time.Now()
	for k, o := range s.objs {
		switch {
		case o.res == "namespaces" && !o.deleted.IsZero() && now.Sub(o.deleted) >= s.NamespaceDeleteDelay:
			delete(s.objs, k)
			for k2, in := range s.objs {
				if in.ns == o.name {
					delete(s.objs, k2)
				}
			}
		case o.res == "pods" && !o.deleted.IsZero() && now.Sub(o.deleted) >= s.PodDeleteDelay:
			delete(s.objs, k)
		case o.res == "pods" && o.deleted.IsZero():
			s.advancePod(o, now)
		case o.res == "secrets" && now.Sub(o.created) >= s.TokenDelay:
			s.fillToken(o)
		case o.res == "serviceaccounts" && s.OpenShift && now.Sub(o.created) >= s.TokenDelay:
			s.accountSecret(o)
		}
	}
}

func (s *Server) advancePod(o *obj, now time.Time) {
	st, _ := o.data["status"].(map[string]any)
	if st == nil || st["phase"] != "Pending" || now.Sub(o.created) < s.PodStartDelay/2 {
		return
	}
	spec, _ := o.data["spec"].(map[string]any)
	sel, _ := spec["nodeSelector"].(map[string]any)
	for k, v := range sel {
		if s.NodeLabels[k] != v {
			if st["conditions"] == nil {
				st["conditions"] = []any{map[string]any{"type": "PodScheduled", "status": "False", "reason": "Unschedulable",
					"message": "0/1 nodes are available: 1 node(s) didn't match Pod's node affinity/selector."}}
				s.touch(o)
			}
			return
		}
	}
	spec["nodeName"] = "fake-node-1"
	image := ""
	if cs, _ := spec["containers"].([]any); len(cs) > 0 {
		c, _ := cs[0].(map[string]any)
		image, _ = c["image"].(string)
	}
	if strings.HasSuffix(image, ":missing") {
		reason := "ErrImagePull"
		if now.Sub(o.created) >= s.PodStartDelay {
			reason = "ImagePullBackOff"
		}
		st["containerStatuses"] = []any{map[string]any{"name": "main", "ready": false, "restartCount": 0, "image": image, "imageID": "",
			"state": map[string]any{"waiting": map[string]any{"reason": reason, "message": "Back-off pulling image \"" + image + "\""}}}}
		s.touch(o)
		return
	}
	if now.Sub(o.created) >= s.PodStartDelay {
		st["phase"] = "Running"
		st["conditions"] = []any{map[string]any{"type": "Ready", "status": "True"}}
		s.touch(o)
	}
}

// fillToken fills a service-account token secret's data once.
func (s *Server) fillToken(o *obj) {
	if o.data["type"] != "kubernetes.io/service-account-token" {
		return
	}
	if d, _ := o.data["data"].(map[string]any); len(d) > 0 {
		return
	}
	tok := fmt.Sprintf("token-%s-%s", o.ns, o.name)
	o.data["data"] = map[string]any{
		"token":     base64.StdEncoding.EncodeToString([]byte(tok)),
		"ca.crt":    base64.StdEncoding.EncodeToString(s.CAData()),
		"namespace": base64.StdEncoding.EncodeToString([]byte(o.ns)),
	}
	s.touch(o)
}

// accountSecret gives an OpenShift service account its token secret.
func (s *Server) accountSecret(o *obj) {
	if _, done := o.data["secrets"]; done {
		return
	}
	name := o.name + "-token-x7k2p"
	s.put("secrets", o.ns, name, map[string]any{
		"type":     "kubernetes.io/service-account-token",
		"metadata": map[string]any{"annotations": map[string]any{"kubernetes.io/service-account.name": o.name}},
	})
	s.fillToken(s.objs[key("secrets", o.ns, name)])
	o.data["secrets"] = []any{map[string]any{"name": name}}
	s.touch(o)
}
