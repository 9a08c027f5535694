package fakeaws

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
)

func s3Error(w http.ResponseWriter, status int, code, msg string) {
	w.Header().Set("Content-Type", "application/xml")
	w.WriteHeader(status)
	fmt.Fprintf(w, `<?xml version="1.0" encoding="UTF-8"?><Error><Code>%s</Code><Message>%s</Message><RequestId>fake</RequestId></Error>`, esc(code), esc(msg))
}

// serveS3 answers the S3 REST calls the driver makes, path-style:
// PutObject, DeleteObject, ListObjectsV2 and GetObjectTagging.
func (c *Cloud) serveS3(w http.ResponseWriter, r *http.Request) {
	path := strings.TrimPrefix(r.URL.Path, "/")
	bucket, key, _ := strings.Cut(path, "/")
	q := r.URL.Query()
	c.mu.Lock()
	c.calls["s3:"+r.Method]++
	objs, ok := c.buckets[bucket]
	c.mu.Unlock()
	if !ok {
		s3Error(w, 404, "NoSuchBucket", "The specified bucket does not exist")
		return
	}
	switch {
	case r.Method == http.MethodPut && key != "":
		data, err := readBody(r)
		if err != nil {
			s3Error(w, 400, "IncompleteBody", err.Error())
			return
		}
		tags := map[string]string{}
		if t := r.Header.Get("X-Amz-Tagging"); t != "" {
			v, _ := url.ParseQuery(t)
			for k := range v {
				tags[k] = v.Get(k)
			}
		}
		c.PutObject(Object{Bucket: bucket, Key: key, Data: data, Tags: tags})
		w.Header().Set("ETag", `"fake"`)
	case r.Method == http.MethodDelete && key != "":
		c.mu.Lock()
		delete(objs, key)
		c.mu.Unlock()
		w.WriteHeader(http.StatusNoContent)
	case r.Method == http.MethodGet && key == "" && q.Get("list-type") == "2":
		c.mu.Lock()
		var keys []string
		for k := range objs {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		var b strings.Builder
		for _, k := range keys {
			b.WriteString(el("Contents", tx("Key", k), tx("Size", itoa(len(objs[k].Data)))))
		}
		c.mu.Unlock()
		w.Header().Set("Content-Type", "application/xml")
		fmt.Fprintf(w, `<?xml version="1.0" encoding="UTF-8"?><ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">%s%s%s</ListBucketResult>`,
			tx("Name", bucket), tx("KeyCount", itoa(len(keys))), tx("IsTruncated", "false")+b.String())
	case r.Method == http.MethodGet && key != "" && q.Has("tagging"):
		c.mu.Lock()
		o, ok := objs[key]
		var b strings.Builder
		if ok {
			ks := make([]string, 0, len(o.Tags))
			for k := range o.Tags {
				ks = append(ks, k)
			}
			sort.Strings(ks)
			for _, k := range ks {
				b.WriteString(el("Tag", tx("Key", k), el("Value", esc(o.Tags[k]))))
			}
		}
		c.mu.Unlock()
		if !ok {
			s3Error(w, 404, "NoSuchKey", "The specified key does not exist.")
			return
		}
		w.Header().Set("Content-Type", "application/xml")
		fmt.Fprintf(w, `<?xml version="1.0" encoding="UTF-8"?><Tagging xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><TagSet>%s</TagSet></Tagging>`, b.String())
	default:
		s3Error(w, 501, "NotImplemented", "the fake does not implement "+r.Method+" "+r.URL.String())
	}
}

// readBody reads an object body, decoding the aws-chunked encoding the
// SDK uses when it sends checksums as trailers.
func readBody(r *http.Request) ([]byte, error) {
	if !strings.Contains(r.Header.Get("Content-Encoding"), "aws-chunked") {
		return io.ReadAll(r.Body)
	}
	br := bufio.NewReader(r.Body)
	var out bytes.Buffer
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			return nil, err
		}
		size, err := strconv.ParseInt(strings.TrimSpace(strings.SplitN(line, ";", 2)[0]), 16, 64)
		if err != nil {
			return nil, fmt.Errorf("bad chunk header %q", line)
		}
		if size == 0 {
			return out.Bytes(), nil
		}
		if _, err := io.CopyN(&out, br, size); err != nil {
			return nil, err
		}
		if _, err := br.ReadString('\n'); err != nil {
			return nil, err
		}
	}
}
