package fakeopenstack

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"time"
)

// ServeHTTP answers one API call after the configured latency.
func (c *Cloud) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	c.mu.Lock()
	lat := c.latency
	c.counters.Requests++
	var fail int
	for _, fr := range c.failRules {
		if fr.n > 0 && (fr.method == "" || fr.method == r.Method) && strings.Contains(r.URL.Path, fr.contains) {
			fr.n--
			fail = fr.status
			break
		}
	}
	authed := c.tokens[r.Header.Get("X-Auth-Token")]
	c.mu.Unlock()
	if lat > 0 {
		select {
		case <-time.After(lat):
		case <-r.Context().Done():
			return
		}
	}
	if fail != 0 {
		writeJSON(w, fail, map[string]any{"computeFault": map[string]any{"code": fail, "message": "Injected failure"}})
		return
	}
	public := strings.HasPrefix(r.URL.Path, "/identity") || r.URL.Path == "/network/" || r.URL.Path == "/image/" || r.URL.Path == "/"
	if !public && !authed {
		w.Header().Set("WWW-Authenticate", `Keystone uri="`+c.AuthURL()+`"`)
		writeJSON(w, http.StatusUnauthorized, map[string]any{"error": map[string]any{
			"code": 401, "title": "Unauthorized", "message": "The request you have made requires authentication."}})
		return
	}
	c.mux.ServeHTTP(w, r)
}

func (c *Cloud) routes() {
	m := http.NewServeMux()
	c.mux = m
	// Keystone
	m.HandleFunc("POST /identity/v3/auth/tokens", c.createToken)
	m.HandleFunc("GET /identity/v3/auth/tokens", c.checkToken)
	m.HandleFunc("HEAD /identity/v3/auth/tokens", c.checkToken)
	// Nova
	n := "/compute/v2.1"
	m.HandleFunc("GET "+n+"/servers", c.listServers(false))
	m.HandleFunc("GET "+n+"/servers/detail", c.listServers(true))
	m.HandleFunc("POST "+n+"/servers", c.createServer)
	m.HandleFunc("GET "+n+"/servers/{id}", c.getServer)
	m.HandleFunc("DELETE "+n+"/servers/{id}", c.deleteServer)
	m.HandleFunc("GET "+n+"/servers/{id}/metadata", c.serverMetadata)
	m.HandleFunc("PUT "+n+"/servers/{id}/metadata", c.serverMetadata)
	m.HandleFunc("POST "+n+"/servers/{id}/metadata", c.serverMetadata)
	m.HandleFunc("GET "+n+"/servers/{id}/metadata/{key}", c.serverMetadatum)
	m.HandleFunc("PUT "+n+"/servers/{id}/metadata/{key}", c.serverMetadatum)
	m.HandleFunc("DELETE "+n+"/servers/{id}/metadata/{key}", c.serverMetadatum)
	m.HandleFunc("GET "+n+"/flavors", c.listFlavors(false))
	m.HandleFunc("GET "+n+"/flavors/detail", c.listFlavors(true))
	m.HandleFunc("GET "+n+"/flavors/{id}", c.getFlavor)
	m.HandleFunc("GET "+n+"/os-availability-zone", c.listAZs)
	m.HandleFunc("GET "+n+"/limits", c.novaLimits)
	// Neutron
	m.HandleFunc("GET /network/{$}", c.networkVersions)
	q := "/network/v2.0"
	m.HandleFunc("GET "+q+"/networks", c.listNetworks)
	m.HandleFunc("GET "+q+"/networks/{id}", c.getNetwork)
	m.HandleFunc("GET "+q+"/ports", c.listPorts)
	m.HandleFunc("GET "+q+"/ports/{id}", c.getPort)
	m.HandleFunc("DELETE "+q+"/ports/{id}", c.deletePort)
	m.HandleFunc("GET "+q+"/floatingips", c.listFIPs)
	m.HandleFunc("POST "+q+"/floatingips", c.createFIP)
	m.HandleFunc("GET "+q+"/floatingips/{id}", c.getFIP)
	m.HandleFunc("PUT "+q+"/floatingips/{id}", c.updateFIP)
	m.HandleFunc("DELETE "+q+"/floatingips/{id}", c.deleteFIP)
	m.HandleFunc("PUT "+q+"/{kind}/{id}/tags", c.replaceTags)
	m.HandleFunc("GET "+q+"/{kind}/{id}/tags", c.getTags)
	// Glance
	m.HandleFunc("GET /image/{$}", c.imageVersions)
	g := "/image/v2"
	m.HandleFunc("GET "+g+"/images", c.listImages)
	m.HandleFunc("POST "+g+"/images", c.createImage)
	m.HandleFunc("GET "+g+"/images/{id}", c.getImage)
	m.HandleFunc("DELETE "+g+"/images/{id}", c.deleteImage)
	m.HandleFunc("PUT "+g+"/images/{id}/file", c.uploadImage)
	// Cinder
	v := "/volume/v3/{project}"
	m.HandleFunc("GET "+v+"/limits", c.cinderLimits)
	m.HandleFunc("GET "+v+"/volumes/detail", c.listVolumes)
	m.HandleFunc("GET "+v+"/volumes/{id}", c.getVolume)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	if v != nil {
		_ = json.NewEncoder(w).Encode(v)
	}
}

// novaError writes Nova's (and Cinder's) error body.
func novaError(w http.ResponseWriter, status int, format string, args ...any) {
	key := map[int]string{400: "badRequest", 403: "forbidden", 404: "itemNotFound", 409: "conflictingRequest", 413: "overLimit"}[status]
	if key == "" {
		key = "computeFault"
	}
	writeJSON(w, status, map[string]any{key: map[string]any{"code": status, "message": fmt.Sprintf(format, args...)}})
}

// neutronError writes Neutron's error body.
func neutronError(w http.ResponseWriter, status int, typ, format string, args ...any) {
	writeJSON(w, status, map[string]any{"NeutronError": map[string]any{"type": typ, "message": fmt.Sprintf(format, args...), "detail": ""}})
}

// glanceError writes Glance's (webob) HTML error body.
func glanceError(w http.ResponseWriter, status int, msg string) {
	w.Header().Set("Content-Type", "text/html; charset=UTF-8")
	w.WriteHeader(status)
	title := fmt.Sprintf("%d %s", status, http.StatusText(status))
	fmt.Fprintf(w, "<html>\n <head>\n  <title>%s</title>\n </head>\n <body>\n  <h1>%s</h1>\n  %s<br /><br />\n\n\n\n </body>\n</html>", title, title, msg)
}

func decode(r *http.Request, v any) error {
	defer r.Body.Close()
	return json.NewDecoder(r.Body).Decode(v)
}

func ts(t time.Time) string { return t.UTC().Format(time.RFC3339) }

// --- Keystone ---------------------------------------------------------

type authRequest struct {
	Auth struct {
		Identity struct {
			Methods  []string `json:"methods"`
			Password *struct {
				User struct {
					ID       string `json:"id"`
					Name     string `json:"name"`
					Password string `json:"password"`
				} `json:"user"`
			} `json:"password"`
		} `json:"identity"`
	} `json:"auth"`
}

func (c *Cloud) createToken(w http.ResponseWriter, r *http.Request) {
	var req authRequest
	if err := decode(r, &req); err != nil {
		writeJSON(w, 400, map[string]any{"error": map[string]any{"code": 400, "title": "Bad Request", "message": "Malformed request body"}})
		return
	}
	pw := req.Auth.Identity.Password
	if pw == nil || (pw.User.Name != c.opts.Username && pw.User.ID != "u-"+c.opts.Username) || pw.User.Password != c.opts.Password {
		writeJSON(w, 401, map[string]any{"error": map[string]any{"code": 401, "title": "Unauthorized",
			"message": "The request you have made requires authentication."}})
		return
	}
	tok := "gAAAAA" + strings.ReplaceAll(newID(), "-", "")
	c.mu.Lock()
	c.tokens[tok] = true
	c.counters.Auths++
	base := c.url
	c.mu.Unlock()
	ep := func(typ, name, url string) map[string]any {
		return map[string]any{"id": newID(), "type": typ, "name": name, "endpoints": []any{
			map[string]any{"id": newID(), "interface": "public", "region": c.opts.Region, "region_id": c.opts.Region, "url": url},
		}}
	}
	catalog := []any{
		ep("identity", "keystone", base+"/identity"),
		ep("compute", "nova", base+"/compute/v2.1"),
		ep("network", "neutron", base+"/network"),
		ep("image", "glance", base+"/image"),
	}
	if !c.opts.NoVolumeService {
		catalog = append(catalog, ep("block-storage", "cinder", base+"/volume/v3/"+c.opts.ProjectID))
	}
	now := time.Now().UTC()
	dom := map[string]any{"id": "default", "name": "Default"}
	w.Header().Set("X-Subject-Token", tok)
	writeJSON(w, http.StatusCreated, map[string]any{"token": map[string]any{
		"methods":    []string{"password"},
		"user":       map[string]any{"domain": dom, "id": "u-" + c.opts.Username, "name": c.opts.Username, "password_expires_at": nil},
		"audit_ids":  []string{newID()[:22]},
		"expires_at": now.Add(12 * time.Hour).Format("2006-01-02T15:04:05.000000Z"),
		"issued_at":  now.Format("2006-01-02T15:04:05.000000Z"),
		"project":    map[string]any{"domain": dom, "id": c.opts.ProjectID, "name": c.opts.ProjectName},
		"is_domain":  false,
		"roles":      []any{map[string]any{"id": "r-member", "name": "member"}, map[string]any{"id": "r-reader", "name": "reader"}},
		"catalog":    catalog,
	}})
}

func (c *Cloud) checkToken(w http.ResponseWriter, r *http.Request) {
	c.mu.Lock()
	ok := c.tokens[r.Header.Get("X-Subject-Token")]
	c.mu.Unlock()
	if !ok {
		writeJSON(w, 404, map[string]any{"error": map[string]any{"code": 404, "title": "Not Found", "message": "Could not find token."}})
		return
	}
	w.WriteHeader(http.StatusOK)
}

// --- version documents ---------------------------------------------------

func (c *Cloud) networkVersions(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, 200, map[string]any{"versions": []any{map[string]any{"id": "v2.0", "status": "CURRENT",
		"links": []any{map[string]any{"rel": "self", "href": c.URL() + "/network/v2.0/"}}}}})
}

func (c *Cloud) imageVersions(w http.ResponseWriter, r *http.Request) {
	var vs []any
	for _, v := range []string{"v2.16", "v2.15", "v2.9", "v2.0"} {
		st := "SUPPORTED"
		if v == "v2.16" {
			st = "CURRENT"
		}
		vs = append(vs, map[string]any{"id": v, "status": st, "links": []any{map[string]any{"rel": "self", "href": c.URL() + "/image/v2/"}}})
	}
	writeJSON(w, http.StatusMultipleChoices, map[string]any{"versions": vs})
}
