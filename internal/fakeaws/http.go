package fakeaws

import (
	"encoding/json"
	"fmt"
	"html"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"
)

// ServeHTTP dispatches to the fake service the request is for: Service
// Quotas (an X-Amz-Target header), EC2 (a POST of a form to /), else S3.
func (c *Cloud) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if c.opts.Latency > 0 {
		time.Sleep(c.opts.Latency)
	}
	switch {
	case r.Header.Get("X-Amz-Target") != "":
		c.serveQuotas(w, r)
	case r.Method == http.MethodPost && r.URL.Path == "/":
		if err := r.ParseForm(); err != nil {
			ec2Error(w, 400, "MalformedQueryString", err.Error())
			return
		}
		c.serveEC2(w, r.PostForm)
	default:
		c.serveS3(w, r)
	}
}

const ec2NS = "http://ec2.amazonaws.com/doc/2016-11-15/"

// ec2Error writes an EC2 error body.
func ec2Error(w http.ResponseWriter, status int, code, msg string) {
	w.Header().Set("Content-Type", "text/xml;charset=UTF-8")
	w.WriteHeader(status)
	fmt.Fprintf(w, `<?xml version="1.0" encoding="UTF-8"?>
<Response><Errors><Error><Code>%s</Code><Message>%s</Message></Error></Errors><RequestID>fake-request</RequestID></Response>`,
		esc(code), esc(msg))
}

// ec2Reply writes an EC2 success body of action with the inner XML.
func ec2Reply(w http.ResponseWriter, action, inner string) {
	w.Header().Set("Content-Type", "text/xml;charset=UTF-8")
	fmt.Fprintf(w, `<?xml version="1.0" encoding="UTF-8"?>
<%sResponse xmlns="%s"><requestId>fake-request</requestId>%s</%sResponse>`, action, ec2NS, inner, action)
}

func esc(s string) string { return html.EscapeString(s) }

// el renders <name>children</name>.
func el(name string, children ...string) string {
	return "<" + name + ">" + strings.Join(children, "") + "</" + name + ">"
}

// tx renders <name>escaped text</name>, or nothing for "".
func tx(name, v string) string {
	if v == "" {
		return ""
	}
	return el(name, esc(v))
}

func itoa(n int) string { return strconv.Itoa(n) }

func tagSet(tags map[string]string) string {
	if len(tags) == 0 {
		return ""
	}
	keys := make([]string, 0, len(tags))
	for k := range tags {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	for _, k := range keys {
		b.WriteString(el("item", tx("key", k), el("value", esc(tags[k]))))
	}
	return el("tagSet", b.String())
}

// members returns the values of a query list (Prefix.1, Prefix.2, ...).
func members(f url.Values, prefix string) []string {
	var out []string
	for i := 1; ; i++ {
		v, ok := f[prefix+"."+itoa(i)]
		if !ok {
			return out
		}
		out = append(out, v[0])
	}
}

// indexes returns how many Prefix.N.* entries a query list has.
func indexes(f url.Values, prefix string) int {
	n := 0
	for k := range f {
		if !strings.HasPrefix(k, prefix+".") {
			continue
		}
		rest := strings.TrimPrefix(k, prefix+".")
		if i := strings.IndexByte(rest, '.'); i >= 0 {
			rest = rest[:i]
		}
		if v, err := strconv.Atoi(rest); err == nil && v > n {
			n = v
		}
	}
	return n
}

// queryTags reads Prefix.Tag.N.Key/Value.
func queryTags(f url.Values, prefix string) map[string]string {
	out := map[string]string{}
	for i := 1; i <= indexes(f, prefix+".Tag"); i++ {
		p := fmt.Sprintf("%s.Tag.%d.", prefix, i)
		out[f.Get(p+"Key")] = f.Get(p + "Value")
	}
	return out
}

// filters reads Filter.N.Name / Filter.N.Value.M.
func filters(f url.Values) map[string][]string {
	out := map[string][]string{}
	for i := 1; i <= indexes(f, "Filter"); i++ {
		p := fmt.Sprintf("Filter.%d.", i)
		out[f.Get(p+"Name")] = members(f, p+"Value")
	}
	return out
}

// globMatch matches EC2 filter wildcards (* and ?).
func globMatch(pattern, s string) bool {
	if pattern == "" {
		return s == ""
	}
	switch pattern[0] {
	case '*':
		for i := 0; i <= len(s); i++ {
			if globMatch(pattern[1:], s[i:]) {
				return true
			}
		}
		return false
	case '?':
		return s != "" && globMatch(pattern[1:], s[1:])
	}
	return s != "" && s[0] == pattern[0] && globMatch(pattern[1:], s[1:])
}

// serveQuotas answers the Service Quotas JSON protocol.
func (c *Cloud) serveQuotas(w http.ResponseWriter, r *http.Request) {
	op := strings.TrimPrefix(r.Header.Get("X-Amz-Target"), "ServiceQuotasV20190624.")
	c.mu.Lock()
	c.calls["servicequotas:"+op]++
	c.mu.Unlock()
	w.Header().Set("Content-Type", "application/x-amz-json-1.1")
	fail := func(status int, typ, msg string) {
		w.WriteHeader(status)
		_ = json.NewEncoder(w).Encode(map[string]string{"__type": typ, "message": msg})
	}
	if op != "GetServiceQuota" {
		fail(400, "UnknownOperationException", "unknown operation "+op)
		return
	}
	var in struct{ ServiceCode, QuotaCode string }
	if err := json.NewDecoder(r.Body).Decode(&in); err != nil {
		fail(400, "SerializationException", err.Error())
		return
	}
	c.mu.Lock()
	v, ok := c.quotas[in.QuotaCode]
	c.mu.Unlock()
	if in.ServiceCode != "ec2" || !ok {
		fail(400, "NoSuchResourceException", fmt.Sprintf("The request failed because the specified service quota %s does not exist.", in.QuotaCode))
		return
	}
	_ = json.NewEncoder(w).Encode(map[string]any{"Quota": map[string]any{
		"ServiceCode": "ec2", "QuotaCode": in.QuotaCode, "Value": v, "Unit": "None",
	}})
}
