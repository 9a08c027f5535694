package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"regexp"

	"github.com/nodepool-go/nodepool/driver"
)

// MaxFileSize is the largest configuration file read, in bytes: loading
// is linear in a file's size, and a larger file is far beyond any real
// deployment.
const MaxFileSize = 32 << 20

// ErrTooLarge is wrapped by the error for a configuration file larger
// than MaxFileSize.
var ErrTooLarge = errors.New("configuration file too large")

// readLimited reads at most MaxFileSize bytes of a file; a longer file is
// an error wrapping ErrTooLarge.
func readLimited(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, MaxFileSize+1))
	if err != nil {
		return nil, err
	}
	if err := checkSize(path, len(data)); err != nil {
		return nil, err
	}
	return data, nil
}

func checkSize(name string, n int) error {
	if n > MaxFileSize {
		return fmt.Errorf("%s: %w: more than %d bytes (the limit is %d MiB)", name, ErrTooLarge, MaxFileSize, MaxFileSize>>20)
	}
	return nil
}

var unsetRefRE = regexp.MustCompile(`%\((NODEPOOL_[^)\s]*)\)`)

// warnUnset records a warning for every %(NODEPOOL_*) reference left in
// substituted text: its variable is not set, so the text stays as
// written.
func warnUnset(data []byte, probs *driver.Problems) {
	for _, m := range unsetRefRE.FindAllSubmatchIndex(data, -1) {
		line := 1 + bytes.Count(data[:m[0]], []byte("\n"))
		probs.Warnf(line, "", "%s is not set: %s is left as written", data[m[2]:m[3]], data[m[0]:m[1]])
	}
}
