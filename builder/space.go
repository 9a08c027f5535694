package builder

import (
	"errors"
	"fmt"
	"math"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"unicode"

	"github.com/nodepool-go/nodepool/config"
)

// freeSpace returns the bytes available to unprivileged users on the
// filesystem holding dir; a dir that does not exist yet is looked up
// through its nearest existing parent.
func freeSpace(dir string) (int64, error) {
	dir = filepath.Clean(dir)
	for {
		var st syscall.Statfs_t
		err := syscall.Statfs(dir, &st)
		if err == nil {
			return int64(st.Bavail) * int64(st.Bsize), nil
		}
		parent := filepath.Dir(dir)
		if !errors.Is(err, syscall.ENOENT) || parent == dir {
			return 0, fmt.Errorf("statfs %s: %w", dir, err)
		}
		dir = parent
	}
}

// enoughSpace reports whether a build of image may start as far as the
// free space of images-dir goes; when it may not, it logs why. An error
// reading the free space is logged and does not block the build.
func (b *Builder) enoughSpace(cfg *config.Config, image string) bool {
	need := b.opts.MinFreeSpace
	if need <= 0 {
		return true
	}
	free, err := freeSpace(cfg.ImagesDir)
	if err != nil {
		b.log.Warn("unable to check the free space of images-dir; building anyway", "image", image, "images_dir", cfg.ImagesDir, "error", err)
		return true
	}
	if free < need {
		b.log.Warn(fmt.Sprintf("Not building image %s: images-dir %s has %d bytes free, less than the required %d (min-free-space); will retry", image, cfg.ImagesDir, free, need),
			"image", image, "images_dir", cfg.ImagesDir, "free_bytes", free, "required_bytes", need)
		return false
	}
	return true
}

// ParseSize parses a byte count with an optional binary suffix: "1073741824",
// "512M", "512MiB", "1G", "1GiB", "2T" (K, M, G and T are powers of 1024;
// a trailing "B" or "iB" is allowed).
func ParseSize(s string) (int64, error) {
	t := strings.TrimSpace(s)
	t = strings.TrimSuffix(strings.TrimSuffix(t, "B"), "i")
	mult := int64(1)
	if n := len(t); n > 0 {
		switch unicode.ToUpper(rune(t[n-1])) {
		case 'K':
			mult = 1 << 10
		case 'M':
			mult = 1 << 20
		case 'G':
			mult = 1 << 30
		case 'T':
			mult = 1 << 40
		}
		if mult > 1 {
			t = t[:n-1]
		}
	}
	v, err := strconv.ParseInt(strings.TrimSpace(t), 10, 64)
	if err != nil || v < 0 || v > math.MaxInt64/mult {
		return 0, fmt.Errorf("invalid size %q", s)
	}
	return v * mult, nil
}
