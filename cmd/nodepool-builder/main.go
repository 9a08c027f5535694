// Command nodepool-builder builds diskimages with diskimage-builder, uploads
// them to the providers and prunes old ones: the reference binary around
// package builder.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/nodepool-go/nodepool/builder"
	"github.com/nodepool-go/nodepool/config"
	_ "github.com/nodepool-go/nodepool/driver/stock"
	"github.com/nodepool-go/nodepool/internal/daemon"
	"github.com/nodepool-go/nodepool/internal/logconfig"
	"github.com/nodepool-go/nodepool/zkclient"
)

func main() { os.Exit(run(os.Args[1:])) }

// builderFlags are the builder's own flags, beside daemon.Flags.
type builderFlags struct {
	buildWorkers, uploadWorkers *int
	minFree, metricsAddr        *string
}

// flags defines the builder's command line.
func flags() (*flag.FlagSet, *daemon.Flags, builderFlags) {
	fs := flag.NewFlagSet("nodepool-builder", flag.ContinueOnError)
	df := &daemon.Flags{}
	df.Register(fs)
	var o builderFlags
	o.buildWorkers = fs.Int("build-workers", builder.DefaultBuildWorkers, "number of build workers")
	o.uploadWorkers = fs.Int("upload-workers", builder.DefaultUploadWorkers, "number of upload workers")
	o.minFree = fs.String("min-free-space", "1GiB", "free space the filesystem holding images-dir must have for a build to start (bytes, or with a K/M/G/T suffix); 0 disables the check")
	o.metricsAddr = fs.String("metrics-address", "", "serve Prometheus metrics on this host:port at /metrics (default: off)")
	return fs, df, o
}

func run(args []string) int {
	fs, df, o := flags()
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
	minFreeBytes, err := builder.ParseSize(*o.minFree)
	if err != nil {
		fmt.Fprintf(os.Stderr, "Error: -min-free-space: %v\n", err)
		return 2
	}
	if minFreeBytes == 0 {
		minFreeBytes = -1 // disabled
	}
	proc, err := daemon.Start(df)
	if err != nil {
		fmt.Fprintf(os.Stderr, "Error: %v\n", err)
		return 1
	}
	defer proc.Close()
	log := proc.Log.With(logconfig.LoggerKey, "nodepool.builder.NodePoolBuilder")
	path, securePath := daemon.ConfigPaths(df.Config, df.Secure)
	load := func(context.Context) (*config.Config, error) { return config.Load(path, securePath) }
	cfg, err := load(context.Background())
	if err != nil {
		fmt.Fprintf(os.Stderr, "Error: %v\n", err)
		return 1
	}
	if len(cfg.ZooKeeperServers) == 0 {
		fmt.Fprintln(os.Stderr, "Error: No ZooKeeper servers specified in config.")
		return 1
	}
	if cfg.ImagesDir == "" {
		fmt.Fprintln(os.Stderr, "Error: No images-dir specified in config.")
		return 1
	}
	if cfg.ZooKeeperTLS == nil {
		log.Warn("zookeeper-tls is not configured; connecting to ZooKeeper without TLS")
	}
	if _, err := builder.ReadOrCreateBuilderID(cfg.ImagesDir); err != nil {
		fmt.Fprintf(os.Stderr, "Error: %v\n", err)
		return 1
	}
	zcfg, err := cfg.ZooKeeperClientConfig()
	if err != nil {
		fmt.Fprintf(os.Stderr, "Error: %v\n", err)
		return 1
	}
	zcfg.Logger = proc.Log.With(logconfig.LoggerKey, "nodepool.zk.ZooKeeper")
	cctx, ccancel := context.WithTimeout(context.Background(), 60*time.Second)
	zc, err := zkclient.Connect(cctx, zcfg)
	ccancel()
	if err != nil {
		fmt.Fprintf(os.Stderr, "Error: %v\n", err)
		return 1
	}
	defer zc.Close()

	b, err := builder.New(load, zc,
		builder.WithWorkers(*o.buildWorkers, *o.uploadWorkers),
		builder.WithLogger(log),
		builder.WithMinFreeSpace(minFreeBytes))
	if err != nil {
		fmt.Fprintf(os.Stderr, "Error: %v\n", err)
		return 1
	}

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if *o.metricsAddr != "" {
		mux := http.NewServeMux()
		mux.Handle("/metrics", b.MetricsHandler())
		srv := &http.Server{Addr: *o.metricsAddr, Handler: mux, ReadHeaderTimeout: 10 * time.Second}
		go func() {
			if err := srv.ListenAndServe(); err != nil && !errors.Is(err, http.ErrServerClosed) {
				log.Error("metrics server failed", "error", err)
			}
		}()
		defer srv.Close()
	}
	// SIGTERM keeps its default action (immediate termination, as
	// upstream); the pid file goes first. SIGUSR2's stack dump is
	// daemon.Start's.
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM)
	go func() {
		for s := range sigs {
			if s == syscall.SIGTERM {
				proc.Close()
				signal.Reset(syscall.SIGTERM)
				_ = syscall.Kill(os.Getpid(), syscall.SIGTERM)
				select {}
			}
			log.Info("stopping gracefully", "signal", s.String())
			cancel()
		}
	}()
	if err := b.Run(ctx); err != nil && !errors.Is(err, context.Canceled) {
		fmt.Fprintf(os.Stderr, "Error: %v\n", err)
		return 1
	}
	return 0
}
