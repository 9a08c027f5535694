// Package daemon holds the start-up steps the reference daemons share.
package daemon

import (
	"log/slog"
	"net/http"
	"net/http/pprof"
	"path/filepath"
	"time"
)

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

// ServeProfiles serves Go's runtime profiles (net/http/pprof) on addr in
// the background; an empty addr serves nothing. Bind it to loopback: the
// profiles reveal memory contents.
func ServeProfiles(addr string, log *slog.Logger) {
	if addr == "" {
		return
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	srv := &http.Server{Addr: addr, Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		log.Info("serving runtime profiles", "address", addr)
		if err := srv.ListenAndServe(); err != nil {
			log.Error("profile server stopped", "error", err)
		}
	}()
}
