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
	"github.com/nodepool-go/nodepool/internal/logconfig"
	"github.com/nodepool-go/nodepool/internal/statuspage"
	"github.com/nodepool-go/nodepool/internal/webapp"
)

// flags defines the launcher's command line.
func flags() (fs *flag.FlagSet, df *daemon.Flags, noWeb *bool, cleanupEvery *time.Duration, memLimit *int64) {
	fs = flag.NewFlagSet("nodepool-launcher", flag.ContinueOnError)
	df = &daemon.Flags{}
	df.Register(fs)
	noWeb = fs.Bool("no-webapp", false, "do not serve the web status API")
	cleanupEvery = fs.Duration("cleanup-interval", 60*time.Second, "how often cleanup tasks run (leaked instances go after two passes)")
	memLimit = fs.Int64("memory-limit-mb", defaultMemoryLimitMB, "soft limit of the Go runtime's memory in MiB (0: none; the GOMEMLIMIT environment variable takes precedence)")
	return fs, df, noWeb, cleanupEvery, memLimit
}

// Main runs the launcher with command-line arguments args (without the
// program name) and returns the process exit code.
func Main(args []string) int {
	fs, df, noWeb, cleanupEvery, memLimit := flags()
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if df.Version {
		daemon.PrintVersion(os.Stdout)
		return 0
	}
	setMemoryLimit(*memLimit)
	proc, err := daemon.Start(df)
	if err != nil {
		fmt.Fprintf(os.Stderr, "Error: %v\n", err)
		return 1
	}
	defer proc.Close()
	log := proc.Log.With(logconfig.LoggerKey, "nodepool.NodePool")
	path, securePath := daemon.ConfigPaths(df.Config, df.Secure)
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
				// Immediate exit without cleanup, as upstream; only
				// the pid file goes.
				proc.Close()
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
			srv := webapp.NewServer(addr, webapp.New(l.ZooKeeper(), l.Ready, webapp.WithMetrics(l.MetricsHandler()), webapp.WithPage(statuspage.New(l))))
			log := proc.Log.With(logconfig.LoggerKey, "nodepool.WebApp")
			log.Info("serving web status API", "address", addr)
			if err := webapp.ListenAndServe(srv); err != nil && !errors.Is(err, http.ErrServerClosed) {
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

// defaultMemoryLimitMB is the launcher's default soft memory limit, a
// backstop above what defaultGCPercent keeps a 10,000-request burst at: as
// the runtime's memory nears it the collector runs ever more often, so a
// limit close to the live heap costs far more CPU than a lower GOGC for the
// same peak. It is soft: a launcher that needs more gets more.
const defaultMemoryLimitMB = 64

// defaultGCPercent is the launcher's GOGC unless the environment sets one:
// a cycle starts when the heap has grown by half of what is live (Go's
// default is all of it), which bounds a burst's peak at about 1.5 times
// the live heap.
const defaultGCPercent = 50

// setMemoryLimit applies the soft memory limit unless GOMEMLIMIT is set,
// and the collector's pace unless GOGC is set.
func setMemoryLimit(mb int64) {
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(defaultGCPercent)
	}
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
