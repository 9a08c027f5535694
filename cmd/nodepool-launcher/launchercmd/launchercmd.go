// Package launchercmd is the nodepool-launcher command as a library: a
// program that registers its own drivers (with blank imports or
// driver.Register) and calls Main is the stock launcher with those drivers
// added. cmd/nodepool-launcher is exactly that with the stock drivers;
// examples/custom-driver adds one.
package launchercmd

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"runtime"
	"runtime/debug"
	"strconv"
	"syscall"
	"time"

	"github.com/nodepool-go/nodepool"
	"github.com/nodepool-go/nodepool/config"
	_ "github.com/nodepool-go/nodepool/driver/stock"
	"github.com/nodepool-go/nodepool/internal/daemon"
	"github.com/nodepool-go/nodepool/internal/webapp"
)

// Main runs the launcher with command-line arguments args (without the
// program name) and returns the process exit code.
func Main(args []string) int {
	fs := flag.NewFlagSet("nodepool-launcher", flag.ContinueOnError)
	configFlag := fs.String("c", "/etc/nodepool/nodepool.yaml", "path to the config file")
	secure := fs.String("s", "", "path to the secure config file")
	noWeb := fs.Bool("no-webapp", false, "do not serve the web status API")
	debug := fs.Bool("debug", false, "log at debug level")
	profiles := fs.String("pprof", "", "serve Go runtime profiles on this address (e.g. 127.0.0.1:6060)")
	cleanupEvery := fs.Duration("cleanup-interval", 60*time.Second, "how often cleanup tasks run (leaked instances go after two passes)")
	memLimit := fs.Int64("memory-limit-mb", defaultMemoryLimitMB, "soft limit of the Go runtime's memory in MiB (0: none; the GOMEMLIMIT environment variable takes precedence)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	setMemoryLimit(*memLimit)
	log := daemon.Logger(*debug)
	daemon.ServeProfiles(*profiles, log)
	path, securePath := daemon.ConfigPaths(*configFlag, *secure)
	cfg, err := config.Load(path, securePath)
	if err != nil {
		fmt.Fprintf(os.Stderr, "Error: %v\n", err)
		return 1
	}
	for _, w := range cfg.Warnings {
		log.Warn("configuration", "warning", w.Error())
	}
	l, err := nodepool.NewLauncher(cfg, nodepool.WithLogger(log), nodepool.WithConfigFile(path, securePath), nodepool.WithCleanupInterval(*cleanupEvery))
	if err != nil {
		fmt.Fprintf(os.Stderr, "Error: %v\n", err)
		return 1
	}
	freeStartupGarbage()

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGUSR1, syscall.SIGTERM)
	go func() {
		for s := range sigs {
			if s == syscall.SIGTERM {
				// Upstream: immediate exit, no cleanup.
				os.Exit(0)
			}
			log.Info("stopping gracefully", "signal", s.String())
			cancel()
		}
	}()

	errs := make(chan error, 1)
	go func() { errs <- l.Run(ctx) }()

	if !*noWeb {
		addr := net.JoinHostPort(cfg.WebApp.ListenAddress, strconv.Itoa(cfg.WebApp.Port))
		go func() {
			for l.ZooKeeper() == nil {
				time.Sleep(50 * time.Millisecond)
			}
			srv := &http.Server{Addr: addr, Handler: webapp.New(l.ZooKeeper(), l.Ready, webapp.WithMetrics(l.MetricsHandler())), ReadHeaderTimeout: 10 * time.Second}
			log.Info("serving web status API", "address", addr)
			if err := srv.ListenAndServe(); err != nil && !errors.Is(err, http.ErrServerClosed) {
				log.Error("web status API stopped", "error", err)
			}
		}()
	}
	if err := <-errs; err != nil && !errors.Is(err, context.Canceled) {
		fmt.Fprintf(os.Stderr, "Error: %v\n", err)
		return 1
	}
	return 0
}

// defaultMemoryLimitMB is the launcher's default soft memory limit: the Go
// runtime collects more often as its memory nears it instead of letting
// the heap grow to twice what is live, which is where a large burst's peak
// comes from. It is soft: a launcher that needs more gets more.
const defaultMemoryLimitMB = 48

// setMemoryLimit applies the soft memory limit unless GOMEMLIMIT is set.
func setMemoryLimit(mb int64) {
	if os.Getenv("GOMEMLIMIT") != "" || mb <= 0 {
		return
	}
	debug.SetMemoryLimit(mb << 20)
}

// freeStartupGarbage collects what package initialization and loading the
// configuration left behind (cloud SDKs build large tables at start) and
// returns it to the operating system, once.
func freeStartupGarbage() {
	runtime.GC()
	debug.FreeOSMemory()
}
