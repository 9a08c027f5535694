// Command nodepool is the administrative CLI of Nodepool for Go: it lists
// nodes, requests and images from ZooKeeper and holds, deletes and manages
// them, with the sub-commands, tables, messages and exit codes of Python
// nodepool's `nodepool` command.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/nodepool-go/nodepool/config"
	"github.com/nodepool-go/nodepool/driver"
	"github.com/nodepool-go/nodepool/internal/daemon"
	"github.com/nodepool-go/nodepool/internal/logconfig"
	"github.com/nodepool-go/nodepool/internal/status"
	"github.com/nodepool-go/nodepool/zkclient"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// run executes the command line args and returns the exit code.
func run(argv []string, stdout, stderr io.Writer) int {
	c := &cli{stdin: os.Stdin, now: time.Now}
	return c.run(argv, stdout, stderr)
}

// cli holds what a command run needs; tests replace the clock and stdin.
type cli struct {
	stdin  io.Reader
	now    func() time.Time
	stdout io.Writer
	stderr io.Writer
	log    *slog.Logger
	logCfg *logconfig.Config // from -l, when given

	// lockTimeout bounds the node lock of hold/delete (default 5 s).
	lockTimeout time.Duration
	// deleteTimeout bounds `delete --now`'s cloud deletion (default 600 s).
	deleteTimeout time.Duration
	// pollInterval is the pause between delete machine steps (default 1 s).
	pollInterval time.Duration

	cfg *config.Config
	zk  *zkclient.Client
	src *status.Source
	a   *args // global options
	sa  *args // sub-command options
}

var formatOpt = func() *option {
	return &option{flags: []string{"--format"}, dest: "format", choices: []string{"text", "json"},
		help: "output format (default: text)"}
}

func buildParser() *parser {
	p := newParser("nodepool", "Node pool.")
	p.version = daemon.VersionLine()
	p.add(&option{flags: []string{"-l"}, dest: "logconfig", help: "path to log config file"})
	p.add(&option{flags: []string{"--version"}, dest: "version", kind: kindVersion, help: "show version"})
	p.add(&option{flags: []string{"-c"}, dest: "config", help: "path to config file"})
	p.add(&option{flags: []string{"-s"}, dest: "secure", help: "path to secure file"})
	p.add(&option{flags: []string{"--debug"}, dest: "debug", kind: kindTrue, help: "show DEBUG level logging"})
	p.add(&option{flags: []string{"--zk-timeout"}, dest: "zk_timeout", metavar: "SECONDS",
		help: "ZooKeeper connect timeout in seconds (default 10)"})
	p.cmdTitle, p.cmdDesc, p.cmdHelp = "commands", "valid commands", "additional help"

	s := p.addCommand("list", "list nodes")
	s.add(&option{flags: []string{"--detail"}, dest: "detail", kind: kindTrue, help: "Output detailed node info"})
	s.add(formatOpt())
	p.addCommand("image-list", "list images from providers").add(formatOpt())
	p.addCommand("dib-image-list", "list images built with diskimage-builder").add(formatOpt())
	p.addCommand("image-status", "list image status").add(formatOpt())
	p.addCommand("image-build", "build image using diskimage-builder").
		add(&option{dest: "image", help: "image name"})
	s = p.addCommand("alien-image-list", "list images not accounted for by nodepool")
	s.add(&option{dest: "provider", optional: true, help: "provider name"})
	s.add(formatOpt())
	s = p.addCommand("delete", "place a node in the DELETE state")
	s.add(&option{dest: "id", help: "node id"})
	s.add(&option{flags: []string{"--now"}, dest: "now", kind: kindTrue, help: "delete the node in the foreground"})
	s = p.addCommand("hold", "place a node in the HOLD state e.g. for running maintenance tasks")
	s.add(&option{dest: "id", help: "node id"})
	s.add(&option{flags: []string{"--reason"}, dest: "reason", help: "Reason this node is held"})
	s = p.addCommand("image-delete", "delete an image")
	s.add(&option{flags: []string{"--provider"}, dest: "provider", required: true, help: "provider name"})
	s.add(&option{flags: []string{"--image"}, dest: "image", required: true, help: "image name"})
	s.add(&option{flags: []string{"--upload-id"}, dest: "upload_id", required: true, help: "image upload id"})
	s.add(&option{flags: []string{"--build-id"}, dest: "build_id", required: true, help: "image build id"})
	p.addCommand("dib-image-delete", "Delete a dib built image from disk along with all cloud uploads of this image").
		add(&option{dest: "id", help: "dib image id"})
	p.addCommand("config-validate", "Validate configuration file")
	p.addCommand("request-list", "list the current node requests").add(formatOpt())
	s = p.addCommand("request-explain", "explain why node requests are waiting (per launcher pool)")
	s.add(&option{dest: "id", metavar: "REQUEST_ID", optional: true, help: "only this request"})
	s.add(formatOpt())
	p.addCommand("info", "Show provider data from zookeeper").
		add(&option{dest: "provider", metavar: "PROVIDER", help: "Provider name"})
	s = p.addCommand("erase", "Erase provider data from zookeeper")
	s.add(&option{dest: "provider", metavar: "PROVIDER", help: "Provider name"})
	s.add(&option{flags: []string{"--force"}, dest: "force", kind: kindTrue, help: "Bypass the warning prompt"})
	p.addCommand("image-pause", "pause an image").add(&option{dest: "image", help: "image name"})
	p.addCommand("image-unpause", "unpause an image").add(&option{dest: "image", help: "image name"})
	p.addCommand("export-image-data", "Export image data from ZooKeeper").
		add(&option{dest: "path", help: "Export file path"})
	p.addCommand("import-image-data", "Import image data to ZooKeeper").
		add(&option{dest: "path", help: "Import file path"})
	return p
}

func (c *cli) run(argv []string, stdout, stderr io.Writer) int {
	c.stdout, c.stderr = stdout, stderr
	if c.now == nil {
		c.now = time.Now
	}
	if c.stdin == nil {
		c.stdin = os.Stdin
	}
	if c.lockTimeout == 0 {
		c.lockTimeout = 5 * time.Second
	}
	if c.deleteTimeout == 0 {
		c.deleteTimeout = 600 * time.Second
	}
	if c.pollInterval == 0 {
		c.pollInterval = time.Second
	}
	p := buildParser()
	var extras []string
	a, err := p.parse(argv, &extras)
	if err == nil && len(extras) > 0 {
		err = &argError{p, "unrecognized arguments: " + strings.Join(extras, " ")}
	}
	var ae *argError
	var ex *exitRequest
	switch {
	case errors.As(err, &ex):
		fmt.Fprint(stdout, ex.text)
		return 0
	case errors.As(err, &ae):
		ae.print(stderr)
		return 2
	case err != nil:
		fmt.Fprintf(stderr, "Error: %v\n", err)
		return 1
	}
	if a.command == "" {
		fmt.Fprint(stdout, p.help())
		return 1
	}
	c.a, c.sa = a, a.sub
	if err := c.setupLogging(); err != nil {
		fmt.Fprintf(stderr, "Error: %v\n", err)
		return 1
	}
	defer c.logCfg.Close()
	if a.command == "config-validate" {
		return c.configValidate()
	}
	if err := c.execute(a.command); err != nil {
		fmt.Fprintf(stderr, "Error: %v\n", oneLine(err))
		return 1
	}
	return 0
}

func oneLine(err error) string {
	return strings.ReplaceAll(strings.TrimSpace(err.Error()), "\n", "; ")
}

// setupLogging logs to stderr in upstream's format (DEBUG with --debug,
// else INFO with the ZooKeeper client at WARNING), or as the -l logging
// configuration file says when one is given without --debug.
func (c *cli) setupLogging() error {
	level := slog.LevelInfo
	if c.a.flag("debug") {
		level = slog.LevelDebug
	} else if lc := c.a.get("logconfig"); lc != "" {
		path, _ := filepath.Abs(lc)
		cfg, err := logconfig.Load(path, false)
		if err != nil {
			return err
		}
		c.logCfg = cfg
		c.log = slog.New(cfg.Handler())
		for _, w := range cfg.Warnings {
			c.log.With("logger", "nodepool.logconfig").Warn("logging configuration: " + w)
		}
		return nil
	}
	c.log = slog.New(newPyHandler(c.stderr, level, nil))
	return nil
}

func (c *cli) configPath() string {
	if p := c.a.get("config"); p != "" {
		return p
	}
	return "/etc/nodepool/nodepool.yaml"
}

// configValidate runs `config-validate`.
func (c *cli) configValidate() int {
	log := c.log.With("logger", "nodepool.cmd.config_validator")
	path := c.configPath()
	log.Info("validating " + path)
	probs := config.Validate(path)
	if probs == nil {
		return 0
	}
	for _, w := range probs.Warnings {
		log.Warn(problemText(w))
	}
	for _, e := range probs.Errors {
		log.Error(problemText(e))
	}
	if len(probs.Errors) > 0 {
		return 1
	}
	if secure := c.a.get("secure"); secure != "" {
		// The secure file is checked by loading both, as the daemons do.
		log.Info("validating " + secure)
		if _, err := config.Load(path, secure); err != nil {
			var list *driver.ErrorList
			if !errors.As(err, &list) {
				log.Error(oneLine(err))
				return 1
			}
			for _, e := range list.Errors {
				msg := *e
				if sabs, _ := filepath.Abs(secure); msg.File == sabs {
					// Values of the secure file are secrets: name the
					// problem, never the value.
					msg.Msg, _, _ = strings.Cut(msg.Msg, ", got ")
				}
				log.Error(problemText(&msg))
			}
			return 1
		}
	}
	return 0
}

// problemText is a problem's log message: upstream's message text first
// (operators grep it), then where it was found.
func problemText(e *driver.ConfigError) string {
	where := strings.TrimSuffix((&driver.ConfigError{File: e.File, Line: e.Line, Path: e.Path}).Error(), ": ")
	if where == "" {
		return e.Msg
	}
	return e.Msg + " (" + where + ")"
}

func (c *cli) zkTimeout() (time.Duration, error) {
	s := c.a.get("zk_timeout")
	if s == "" {
		return 10 * time.Second, nil
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil || f <= 0 {
		return 0, fmt.Errorf("invalid --zk-timeout %q", s)
	}
	return time.Duration(f * float64(time.Second)), nil
}

// execute loads the config, connects to ZooKeeper and runs a command.
func (c *cli) execute(cmd string) error {
	timeout, err := c.zkTimeout()
	if err != nil {
		return err
	}
	cfg, err := config.Load(c.configPath(), c.a.get("secure"))
	if err != nil {
		return err
	}
	c.cfg = cfg
	for _, w := range cfg.Warnings {
		c.log.With("logger", "nodepool.config").Warn(w.Error())
	}
	zc, err := cfg.ZooKeeperClientConfig()
	if err != nil {
		return err
	}
	// Upstream raises the ZooKeeper client's logger to WARNING unless --debug.
	zkLevel := slog.LevelWarn
	if c.a.flag("debug") {
		zkLevel = slog.LevelDebug
	}
	zc.Logger = slog.New(newPyHandler(c.stderr, zkLevel, nil)).With("logger", "kazoo.client")
	if c.logCfg != nil {
		zc.Logger = c.log.With("logger", "kazoo.client")
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	zk, err := zkclient.Connect(ctx, zc)
	cancel()
	if err != nil {
		return fmt.Errorf("cannot connect to ZooKeeper at %s within %s (%v)", strings.Join(zc.Hosts, ","), timeout, err)
	}
	defer zk.Close()
	c.zk = zk
	c.src = &status.Source{ZK: zk, Now: c.now}
	ctx = context.Background()
	switch cmd {
	case "list":
		return c.list(ctx)
	case "image-list":
		return c.listing(c.src.ImageList(ctx))
	case "dib-image-list":
		return c.listing(c.src.DibImageList(ctx))
	case "image-status":
		return c.listing(c.src.ImageStatus(ctx))
	case "request-list":
		return c.listing(c.src.RequestList(ctx))
	case "request-explain":
		return c.listing(c.src.RequestExplain(ctx, c.sa.get("id")))
	case "image-build":
		return c.imageBuild(ctx)
	case "alien-image-list":
		return c.alienImageList(ctx)
	case "delete":
		return c.deleteNode(ctx)
	case "hold":
		return c.hold(ctx)
	case "image-delete":
		return c.imageDelete(ctx)
	case "dib-image-delete":
		return c.dibImageDelete(ctx)
	case "info":
		return c.info(ctx)
	case "erase":
		return c.erase(ctx)
	case "image-pause":
		return zk.SetImagePaused(ctx, c.sa.get("image"), true)
	case "image-unpause":
		return zk.SetImagePaused(ctx, c.sa.get("image"), false)
	case "export-image-data":
		return c.exportImageData(ctx)
	case "import-image-data":
		return c.importImageData(ctx)
	}
	return fmt.Errorf("unknown command %s", cmd)
}
