package fakeibmvpc

import (
	"crypto/md5"
	"encoding/hex"
	"encoding/xml"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strings"
	"time"
)

// serveCOS is a path-style S3 endpoint with one bucket, Bucket.
func (c *Cloud) serveCOS(w http.ResponseWriter, r *http.Request) {
	if !c.authorized(r) {
		s3Error(w, http.StatusForbidden, "AccessDenied", "Access Denied")
		return
	}
	if c.intercept(w, r) {
		return
	}
	bucket, key, _ := strings.Cut(strings.TrimPrefix(r.URL.Path, "/"), "/")
	if bucket != Bucket {
		s3Error(w, http.StatusNotFound, "NoSuchBucket", "The specified bucket does not exist.")
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	switch {
	case key == "" && r.Method == "GET" && r.URL.Query().Has("location"):
		w.Header().Set("Content-Type", "application/xml")
		fmt.Fprintf(w, `<?xml version="1.0" encoding="UTF-8"?><LocationConstraint xmlns="http://s3.amazonaws.com/doc/2006-03-01/">%s</LocationConstraint>`, BucketRegion)
	case key == "" && r.Method == "GET":
		type content struct {
			Key          string
			Size         int
			ETag         string
			LastModified string
			StorageClass string
		}
		res := struct {
			XMLName     xml.Name `xml:"ListBucketResult"`
			Name        string
			Prefix      string
			MaxKeys     int
			IsTruncated bool
			Contents    []content
		}{Name: bucket, Prefix: r.URL.Query().Get("prefix"), MaxKeys: 1000}
		var keys []string
		for k := range c.objects {
			if strings.HasPrefix(k, res.Prefix) {
				keys = append(keys, k)
			}
		}
		sort.Strings(keys)
		for _, k := range keys {
			sum := md5.Sum(c.objects[k])
			res.Contents = append(res.Contents, content{Key: k, Size: len(c.objects[k]), ETag: `"` + hex.EncodeToString(sum[:]) + `"`,
				LastModified: time.Now().UTC().Format(time.RFC3339), StorageClass: "STANDARD"})
		}
		w.Header().Set("Content-Type", "application/xml")
		_ = xml.NewEncoder(w).Encode(res)
	case key != "" && r.Method == "PUT":
		body, err := io.ReadAll(r.Body)
		if err != nil {
			s3Error(w, 400, "IncompleteBody", err.Error())
			return
		}
		c.objects[key] = body
		sum := md5.Sum(body)
		w.Header().Set("ETag", `"`+hex.EncodeToString(sum[:])+`"`)
		w.WriteHeader(200)
	case key != "" && r.Method == "DELETE":
		delete(c.objects, key)
		w.WriteHeader(204)
	case key != "" && r.Method == "GET":
		b, ok := c.objects[key]
		if !ok {
			s3Error(w, 404, "NoSuchKey", "The specified key does not exist.")
			return
		}
		_, _ = w.Write(b)
	default:
		s3Error(w, 405, "MethodNotAllowed", "The specified method is not allowed against this resource.")
	}
}

func s3Error(w http.ResponseWriter, status int, code, msg string) {
	w.Header().Set("Content-Type", "application/xml")
	w.WriteHeader(status)
	fmt.Fprintf(w, `<?xml version="1.0" encoding="UTF-8"?><Error><Code>%s</Code><Message>%s</Message><RequestId>fake</RequestId></Error>`, code, msg)
}

// Objects returns the keys of the staged objects.
func (c *Cloud) Objects() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []string
	for k := range c.objects {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// PutObject stages an object directly (as a crashed upload would leave it).
func (c *Cloud) PutObject(key string, data []byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.objects[key] = data
}

// Summary is a test's view of one object of the fake.
type Summary struct {
	ID, Name, Group, Status string
	Target                  string // a floating IP's network interface
	UserData                string // an instance's user data
	Keys                    []string
	Profile                 string
	Image                   string // an instance's image id; an image's file URL
	Deleting                bool
}

// Instances returns the instances that are not deleted yet.
func (c *Cloud) Instances() []Summary {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.reap()
	var out []Summary
	for _, v := range c.instances {
		j := c.instanceJSON(v)
		out = append(out, Summary{ID: v.id, Name: v.name, Group: c.groups[v.group], Status: j["status"].(string), UserData: v.userData,
			Keys: v.keys, Profile: v.profile, Image: v.image, Deleting: !v.deleted.IsZero()})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// FloatingIPs returns the floating IPs that are not deleted yet.
func (c *Cloud) FloatingIPs() []Summary {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.reap()
	var out []Summary
	for _, f := range c.fips {
		out = append(out, Summary{ID: f.id, Name: f.name, Group: c.groups[f.group], Status: c.fipJSON(f)["status"].(string), Target: f.target, Deleting: !f.deleted.IsZero()})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// Images returns the private images that are not deleted yet.
func (c *Cloud) Images() []Summary {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.reap()
	var out []Summary
	for _, im := range c.images {
		if im.public {
			continue
		}
		out = append(out, Summary{ID: im.id, Name: im.name, Group: c.groups[im.group], Status: c.imageJSON(im)["status"].(string), Image: im.href, Deleting: !im.deleted.IsZero()})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// AddInstance creates a running instance directly (a leak, or an instance
// nodepool does not own) in the named resource group, which is created if
// needed, and returns its id.
func (c *Cloud) AddInstance(name, group, profile string) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	gid := ""
	for id, n := range c.groups {
		if n == group {
			gid = id
		}
	}
	if gid == "" {
		gid = c.nextID("rg")
		c.groups[gid] = group
	}
	v := &instance{id: c.nextID("0717"), name: name, profile: profile, group: gid, zone: Zone, nic: c.nextID("0727"),
		created: time.Now().Add(-time.Hour)}
	v.ip = fmt.Sprintf("10.240.%d.%d", c.seq/250%250, c.seq%250+2)
	c.instances[v.id] = v
	return v.id
}

// PeakInstances returns the most instances (not being deleted) there were
// at once, as of the creations through the API.
func (c *Cloud) PeakInstances() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.peak
}

// FailInstances makes the next n created instances end in the failed
// state instead of running.
func (c *Cloud) FailInstances(n int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.failNext = n
}
