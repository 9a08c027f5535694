// Package daemon holds the start-up steps the reference daemons share.
package daemon

import (
	"log/slog"
	"os"
	"path/filepath"
)

// Logger returns a text logger on stderr (debug level when asked) and makes
// it the default.
func Logger(debug bool) *slog.Logger {
	level := slog.LevelInfo
	if debug {
		level = slog.LevelDebug
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	slog.SetDefault(log)
	return log
}

// ConfigPaths returns the configuration and secure file paths made
// absolute, as the daemons re-read them later from any working directory;
// an empty secure path stays empty.
func ConfigPaths(config, secure string) (string, string) {
	path, _ := filepath.Abs(config)
	if secure != "" {
		secure, _ = filepath.Abs(secure)
	}
	return path, secure
}
