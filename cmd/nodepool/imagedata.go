package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"strconv"
	"strings"

	"github.com/nodepool-go/nodepool/internal/pyjson"
	"github.com/nodepool-go/nodepool/zkclient"
)

// exportImageData writes every pause flag, build and upload record as one
// JSON object path → data.
func (c *cli) exportImageData(ctx context.Context) error {
	var keys, values []string
	add := func(p string) error {
		data, _, err := c.zk.Get(ctx, p)
		if errors.Is(err, zkclient.ErrNoNode) {
			return nil
		}
		if err != nil {
			return err
		}
		keys = append(keys, p)
		values = append(values, string(data))
		return nil
	}
	images, err := c.zk.ImageNames(ctx)
	if err != nil {
		return err
	}
	for _, img := range images {
		paused, err := c.zk.ImagePaused(ctx, img)
		if err != nil {
			return err
		}
		if paused {
			keys = append(keys, zkclient.ImagePausePath(img))
			values = append(values, "")
		}
		builds, err := c.zk.BuildIDs(ctx, img)
		if err != nil {
			return err
		}
		for _, b := range builds {
			if err := add(zkclient.BuildPath(img, b)); err != nil {
				return err
			}
			provs, err := c.zk.BuildProviders(ctx, img, b)
			if err != nil {
				return err
			}
			for _, p := range provs {
				ids, err := c.zk.Children(ctx, zkclient.UploadsPath(img, b, p))
				if errors.Is(err, zkclient.ErrNoNode) {
					continue
				}
				if err != nil {
					return err
				}
				sort.Strings(ids)
				for _, id := range ids {
					if id == "lock" {
						continue
					}
					if err := add(zkclient.UploadPath(img, b, p, id)); err != nil {
						return err
					}
				}
			}
		}
	}
	out := []byte{'{'}
	for i, k := range keys {
		if i > 0 {
			out = append(out, ", "...)
		}
		out = pyjson.AppendString(out, k)
		out = append(out, ": "...)
		out = pyjson.AppendString(out, values[i])
	}
	out = append(out, '}')
	f, err := os.OpenFile(c.sa.get("path"), os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	if _, err := f.Write(out); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

type importEntry struct {
	key   string
	value string
	kind  string // "pause", "build", "upload"
	parts []string
}

// readImportFile parses and checks an export file: one JSON object of
// string values whose keys are pause, build or upload paths with valid
// records. Nothing is accepted partially.
func readImportFile(path string) ([]importEntry, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	bad := func(format string, args ...any) error {
		return fmt.Errorf("refusing to import %s: "+format, append([]any{path}, args...)...)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	tok, err := dec.Token()
	if err != nil {
		return nil, bad("not a JSON object (%v)", err)
	}
	if d, ok := tok.(json.Delim); !ok || d != '{' {
		return nil, bad("not a JSON object")
	}
	seen := map[string]string{}
	var entries []importEntry
	for dec.More() {
		kt, err := dec.Token()
		if err != nil {
			return nil, bad("malformed or truncated JSON (%v)", err)
		}
		key, _ := kt.(string)
		var value any
		if err := dec.Decode(&value); err != nil {
			return nil, bad("malformed or truncated JSON at key %q (%v)", key, err)
		}
		s, ok := value.(string)
		if !ok {
			return nil, bad("value of %s is not a string", key)
		}
		if prev, dup := seen[key]; dup {
			if prev != s {
				return nil, bad("key %s appears twice with different values", key)
			}
			continue
		}
		seen[key] = s
		e, err := classify(key, s)
		if err != nil {
			return nil, bad("%v", err)
		}
		entries = append(entries, e)
	}
	if _, err := dec.Token(); err != nil {
		return nil, bad("malformed or truncated JSON (%v)", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, bad("trailing data after the JSON object")
	}
	return entries, nil
}

func validName(s string) bool { return s != "" && s != "lock" && s != "." && s != ".." }

func classify(key, value string) (importEntry, error) {
	e := importEntry{key: key, value: value, parts: strings.Split(key, "/")}
	p := e.parts
	if len(p) < 5 || p[0] != "" || p[1] != "nodepool" || p[2] != "images" || !validName(p[3]) {
		return e, fmt.Errorf("unexpected key %s (not an image data path)", key)
	}
	switch {
	case len(p) == 5 && p[4] == "pause":
		e.kind = "pause"
	case len(p) == 6 && p[4] == "builds" && validName(p[5]):
		e.kind = "build"
		b := &zkclient.ImageBuild{ImageName: p[3], ID: p[5]}
		if err := b.UnmarshalJSON([]byte(value)); err != nil {
			return e, fmt.Errorf("invalid build record %s: %v", key, err)
		}
	case len(p) == 10 && p[4] == "builds" && validName(p[5]) && p[6] == "providers" && validName(p[7]) && p[8] == "images":
		e.kind = "upload"
		if n, err := strconv.Atoi(p[9]); err != nil || n < 0 || len(p[9]) != 10 {
			return e, fmt.Errorf("invalid upload id in %s", key)
		}
		u := &zkclient.ImageUpload{ImageName: p[3], BuildID: p[5], ProviderName: p[7], ID: p[9]}
		if err := u.UnmarshalJSON([]byte(value)); err != nil {
			return e, fmt.Errorf("invalid upload record %s: %v", key, err)
		}
	default:
		return e, fmt.Errorf("unexpected key %s (not a pause flag, build or upload path)", key)
	}
	return e, nil
}

// importImageData restores an export file. The whole file
// and its consistency with ZooKeeper are checked before anything is written.
func (c *cli) importImageData(ctx context.Context) error {
	entries, err := readImportFile(c.sa.get("path"))
	if err != nil {
		return err
	}
	keys := map[string]bool{}
	for _, e := range entries {
		keys[e.key] = true
	}
	var conflicts []string
	for _, e := range entries {
		if e.kind == "upload" {
			build := strings.Join(e.parts[:6], "/")
			if !keys[build] {
				ok, _, err := c.zk.Exists(ctx, build)
				if err != nil {
					return err
				}
				if !ok {
					return fmt.Errorf("refusing to import %s: upload %s belongs to build %s, which is neither in the file nor in ZooKeeper", c.sa.get("path"), e.key, build)
				}
			}
		}
		data, _, err := c.zk.Get(ctx, e.key)
		if errors.Is(err, zkclient.ErrNoNode) {
			continue
		}
		if err != nil {
			return err
		}
		if string(data) != e.value {
			conflicts = append(conflicts, e.key)
		}
	}
	if len(conflicts) > 0 {
		more := ""
		if len(conflicts) > 3 {
			more = fmt.Sprintf(" and %d more", len(conflicts)-3)
			conflicts = conflicts[:3]
		}
		return fmt.Errorf("refusing to import %s: ZooKeeper already holds different data at %s%s", c.sa.get("path"), strings.Join(conflicts, ", "), more)
	}
	// Advance upload sequence counters past the imported ids.
	maxID := map[string]int{}
	for _, e := range entries {
		if e.kind == "upload" {
			parent := strings.Join(e.parts[:9], "/")
			n, _ := strconv.Atoi(e.parts[9])
			if n > maxID[parent] {
				maxID[parent] = n
			}
		}
	}
	parents := make([]string, 0, len(maxID))
	for p := range maxID {
		parents = append(parents, p)
	}
	sort.Strings(parents)
	for _, parent := range parents {
		for i := 0; i < maxID[parent]; i++ {
			p, err := c.zk.Create(ctx, parent+"/", nil, zkclient.Sequential, true)
			if err != nil {
				return err
			}
			if !keys[p] {
				if err := c.zk.Delete(ctx, p, -1); err != nil {
					return err
				}
			}
		}
	}
	for _, e := range entries {
		ok, _, err := c.zk.Exists(ctx, e.key)
		if err != nil {
			return err
		}
		if ok {
			_, err = c.zk.Set(ctx, e.key, []byte(e.value), -1)
		} else {
			_, err = c.zk.Create(ctx, e.key, []byte(e.value), zkclient.Persistent, true)
		}
		if err != nil {
			return err
		}
	}
	return nil
}
