package fakeopenstack

import (
	"crypto/md5"
	"crypto/sha512"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"sort"
)

// core image fields; any other key of a create body is a property.
var imageCore = map[string]bool{"id": true, "name": true, "visibility": true, "container_format": true,
	"disk_format": true, "min_disk": true, "min_ram": true, "protected": true, "tags": true, "os_hidden": true}

func (c *Cloud) imageJSON(im *Image) map[string]any {
	var size, checksum, algo, hash any
	if im.Status == "active" {
		size, checksum = im.Size, nilIfEmpty(im.Checksum)
		if im.SHA512 != "" {
			algo, hash = "sha512", im.SHA512
		}
	}
	m := map[string]any{}
	for k, v := range im.Properties {
		m[k] = v
	}
	for k, v := range map[string]any{
		"id": im.ID, "name": im.Name, "status": im.Status, "visibility": im.Visibility,
		"container_format": im.ContainerFormat, "disk_format": im.DiskFormat, "min_disk": 0, "min_ram": 0,
		"owner": c.opts.ProjectID, "protected": false, "os_hidden": false, "checksum": checksum, "size": size,
		"virtual_size": nil, "os_hash_algo": algo, "os_hash_value": hash, "tags": []string{},
		"created_at": ts(im.Created), "updated_at": ts(im.Created), "self": "/v2/images/" + im.ID,
		"file": "/v2/images/" + im.ID + "/file", "schema": "/v2/schemas/image",
	} {
		m[k] = v
	}
	return m
}

func (c *Cloud) listImages(w http.ResponseWriter, r *http.Request) {
	c.mu.Lock()
	defer c.mu.Unlock()
	q := r.URL.Query()
	var ims []*Image
	for _, im := range c.images {
		if name := q.Get("name"); name != "" && im.Name != name {
			continue
		}
		if st := q.Get("status"); st != "" && im.Status != st {
			continue
		}
		if v := q.Get("visibility"); v != "" && v != "all" && im.Visibility != v {
			continue
		}
		ims = append(ims, im)
	}
	sort.Slice(ims, func(i, j int) bool {
		return ims[i].Created.After(ims[j].Created) || (ims[i].Created.Equal(ims[j].Created) && ims[i].ID < ims[j].ID)
	})
	list := []any{}
	for _, im := range ims {
		list = append(list, c.imageJSON(im))
	}
	writeJSON(w, 200, map[string]any{"images": list, "schema": "/v2/schemas/images", "first": "/v2/images"})
}

func (c *Cloud) getImage(w http.ResponseWriter, r *http.Request) {
	c.mu.Lock()
	defer c.mu.Unlock()
	im, ok := c.images[r.PathValue("id")]
	if !ok {
		glanceError(w, 404, "No image found with ID "+r.PathValue("id"))
		return
	}
	writeJSON(w, 200, c.imageJSON(im))
}

func (c *Cloud) createImage(w http.ResponseWriter, r *http.Request) {
	var body map[string]any
	if err := decode(r, &body); err != nil {
		glanceError(w, 400, "Malformed JSON in request body.")
		return
	}
	im := &Image{ID: newID(), Status: "queued", Visibility: "shared", Properties: map[string]string{}}
	str := func(k string) string { s, _ := body[k].(string); return s }
	im.Name = str("name")
	if v := str("id"); v != "" {
		im.ID = v
	}
	if v := str("visibility"); v != "" {
		im.Visibility = v
	}
	im.DiskFormat, im.ContainerFormat = str("disk_format"), str("container_format")
	for k, v := range body {
		if imageCore[k] {
			continue
		}
		s, ok := v.(string)
		if !ok {
			b, _ := json.Marshal(v)
			s = string(b)
		}
		im.Properties[k] = s
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, dup := c.images[im.ID]; dup {
		glanceError(w, 409, "Image with identifier "+im.ID+" already exists!")
		return
	}
	im.Created = c.now().UTC()
	c.images[im.ID] = im
	writeJSON(w, http.StatusCreated, c.imageJSON(im))
}

func (c *Cloud) uploadImage(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	c.mu.Lock()
	im, ok := c.images[id]
	st := ""
	if ok {
		st = im.Status
		im.Status = "saving"
	}
	c.mu.Unlock()
	if !ok {
		glanceError(w, 404, "No image found with ID "+id)
		return
	}
	if st != "queued" {
		glanceError(w, 409, "Image status transition from "+st+" to saving is not allowed")
		return
	}
	m, s := md5.New(), sha512.New()
	n, err := io.Copy(io.MultiWriter(m, s), r.Body)
	c.mu.Lock()
	defer c.mu.Unlock()
	if err != nil {
		im.Status = "queued"
		glanceError(w, 400, "Error reading image data")
		return
	}
	im.Size, im.Checksum, im.SHA512, im.Status = n, hex.EncodeToString(m.Sum(nil)), hex.EncodeToString(s.Sum(nil)), "active"
	c.counters.ImageUploads++
	w.WriteHeader(http.StatusNoContent)
}

func (c *Cloud) deleteImage(w http.ResponseWriter, r *http.Request) {
	c.mu.Lock()
	defer c.mu.Unlock()
	id := r.PathValue("id")
	if _, ok := c.images[id]; !ok {
		glanceError(w, 404, "Failed to find image "+id+" to delete")
		return
	}
	delete(c.images, id)
	c.counters.ImageDeletes++
	w.WriteHeader(http.StatusNoContent)
}
