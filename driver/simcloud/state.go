package simcloud

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
)

// stateFile is the JSON layout of a state file.
type stateFile struct {
	Servers []*Server       `json:"servers"`
	Images  []*Image        `json:"images"`
	Seq     uint64          `json:"seq"`
	Seeded  map[string]bool `json:"seeded,omitempty"`
}

func (c *Cloud) loadLocked(path string) error {
	data, err := os.ReadFile(path)
	defer c.noteFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("simcloud: reading state file: %w", err)
	}
	var st stateFile
	if err := json.Unmarshal(data, &st); err != nil {
		return fmt.Errorf("simcloud: state file %s: %w", path, err)
	}
	c.servers = make(map[string]*Server, len(st.Servers))
	c.usedCores, c.usedRAM = 0, 0
	for _, s := range st.Servers {
		c.servers[s.ID] = s
		c.usedCores += s.Cores
		c.usedRAM += s.RAM
	}
	c.images = make(map[string]*Image, len(st.Images))
	for _, im := range st.Images {
		c.images[im.ID] = im
	}
	if st.Seq > c.seq {
		c.seq = st.Seq
	}
	for k, v := range st.Seeded {
		c.seeded[k] = v
	}
	return nil
}

// saveLocked writes the state file, if one is configured.
func (c *Cloud) saveLocked() {
	path := c.knobs.StateFile
	if path == "" {
		return
	}
	st := stateFile{Seq: c.seq, Seeded: c.seeded}
	for _, s := range c.servers {
		st.Servers = append(st.Servers, s)
	}
	sort.Slice(st.Servers, func(i, j int) bool { return st.Servers[i].ID < st.Servers[j].ID })
	for _, im := range c.images {
		st.Images = append(st.Images, im)
	}
	sort.Slice(st.Images, func(i, j int) bool { return st.Images[i].ID < st.Images[j].ID })
	data, err := json.MarshalIndent(&st, "", " ")
	if err == nil {
		tmp := path + ".tmp"
		if err = os.MkdirAll(filepath.Dir(path), 0o755); err == nil {
			if err = os.WriteFile(tmp, data, 0o644); err == nil {
				err = os.Rename(tmp, path)
			}
			if err == nil {
				c.noteFile(path)
			}
		}
	}
	c.saveErr = err
}
