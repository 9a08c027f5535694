package builder

import (
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
)

// localFileRe matches a local build file "<image>-<build id>.<ext>" (greedy name,
// lowercase-hex id after the last dash).
var localFileRe = regexp.MustCompile(`^(.*)-([abcdef\d]+)\.(?:\w+)$`)

// localBuild is an (image, build id) pair that has files in images-dir.
type localBuild struct {
	Image string
	ID    string
}

// localBuilds scans images-dir for build files and manifest directories.
func localBuilds(dir string) ([]localBuild, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		if os.IsNotExist(err) {
			return nil, nil
		}
		return nil, err
	}
	seen := map[localBuild]bool{}
	var out []localBuild
	for _, e := range entries {
		m := localFileRe.FindStringSubmatch(e.Name())
		if m == nil {
			continue
		}
		lb := localBuild{Image: m[1], ID: m[2]}
		if !seen[lb] {
			seen[lb] = true
			out = append(out, lb)
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Image != out[j].Image {
			return out[i].Image < out[j].Image
		}
		return out[i].ID < out[j].ID
	})
	return out, nil
}

// hasLocalFile reports whether images-dir holds a regular file whose name
// minus its last extension is <image>-<id> (only the builder that built an
// image uploads it).
func hasLocalFile(dir, image, id string) bool {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return false
	}
	base := image + "-" + id
	for _, e := range entries {
		if !e.Type().IsRegular() {
			continue
		}
		n := e.Name()
		if i := strings.LastIndexByte(n, '.'); i > 0 && n[:i] == base {
			return true
		}
	}
	return false
}

// localImageFile returns the path of <image>-<id>.<format> if it is a
// regular file.
func localImageFile(dir, image, id, format string) (string, bool) {
	p := filepath.Join(dir, image+"-"+id+"."+format)
	st, err := os.Stat(p)
	if err != nil || !st.Mode().IsRegular() {
		return "", false
	}
	return p, true
}

// deleteLocalBuild removes every file of a build: <image>-<id>.<ext>, its
// .md5/.sha256 companions and the <image>-<id>.d manifest directory. Unlike
// upstream, orphan checksums and manifests are removed even when no image
// file is left.
func deleteLocalBuild(dir, image, id string, log *slog.Logger) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return
	}
	prefix := image + "-" + id + "."
	for _, e := range entries {
		n := e.Name()
		if !strings.HasPrefix(n, prefix) {
			continue
		}
		p := filepath.Join(dir, n)
		if e.IsDir() {
			if err := os.RemoveAll(p); err == nil {
				log.Info("Removed DIB manifest " + p)
			}
			continue
		}
		if err := os.Remove(p); err == nil {
			log.Info("Removed DIB file " + p)
		}
	}
}
