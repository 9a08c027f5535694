package builder

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"regexp"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/nodepool-go/nodepool/config"
	"github.com/nodepool-go/nodepool/zkclient"
)

// buildPass runs one build-worker iteration: scheduled checks, then manual
// requests, for every diskimage in config order.
func (b *Builder) buildPass(ctx context.Context) error {
	cfg, err := b.opts.Config(ctx)
	if err != nil {
		return err
	}
	for _, manual := range []bool{false, true} {
		for _, d := range cfg.Diskimages {
			if ctx.Err() != nil || !b.zk.Connected() {
				return nil
			}
			cur, err := b.opts.Config(ctx)
			if err != nil {
				return err
			}
			if !reflect.DeepEqual(cur, cfg) {
				b.log.Info("configuration changed; restarting build scan")
				return nil
			}
			var berr error
			if manual {
				berr = b.checkManual(ctx, cfg, d)
			} else {
				berr = b.checkScheduled(ctx, cfg, d)
			}
			if berr != nil {
				b.log.Error("build check failed", "image", d.Name, "error", berr)
			}
		}
	}
	return nil
}

// buildable reports whether an image may be built now, and its formats.
func (b *Builder) buildable(ctx context.Context, cfg *config.Config, d *config.DiskimageConfig) ([]string, bool, error) {
	if d.Pause {
		return nil, false, nil
	}
	paused, err := b.zk.ImagePaused(ctx, d.Name)
	if err != nil || paused {
		return nil, false, err
	}
	formats := cfg.ImageFormats(d.Name)
	return formats, len(formats) > 0, nil
}

// mostRecentBuild returns the ready build with the greatest state_time.
func (b *Builder) mostRecentBuild(ctx context.Context, image string) (*zkclient.ImageBuild, error) {
	builds, err := mostRecentBuilds(ctx, b.zk, image, 1, zkclient.ImageReady)
	if err != nil || len(builds) == 0 {
		return nil, err
	}
	return builds[0], nil
}

// mostRecentBuilds returns up to count builds of image in the given state
// ("" = any), newest state_time first (never ordered by id).
func mostRecentBuilds(ctx context.Context, zc *zkclient.Client, image string, count int, state zkclient.ImageState) ([]*zkclient.ImageBuild, error) {
	var states []zkclient.ImageState
	if state != "" {
		states = append(states, state)
	}
	builds, err := zc.Builds(ctx, image, states...)
	if err != nil {
		return nil, err
	}
	sort.SliceStable(builds, func(i, j int) bool { return builds[i].StateTime > builds[j].StateTime })
	if count >= 0 && len(builds) > count {
		builds = builds[:count]
	}
	return builds, nil
}

func (b *Builder) checkScheduled(ctx context.Context, cfg *config.Config, d *config.DiskimageConfig) error {
	formats, ok, err := b.buildable(ctx, cfg, d)
	if err != nil || !ok {
		return err
	}
	recent, err := b.mostRecentBuild(ctx, d.Name)
	if err != nil {
		return err
	}
	if recent != nil {
		age := float64(b.now().Unix()) - recent.StateTime
		if age < d.RebuildAge.Seconds() && isSuperset(recent.Formats, formats) {
			return nil
		}
	}
	if !b.enoughSpace(cfg, d.Name) {
		return nil
	}
	lock := b.zk.NewLock(zkclient.BuildLockPath(d.Name))
	got, err := lock.TryAcquire(ctx)
	if err != nil || !got {
		return err
	}
	defer lock.Release(context.WithoutCancel(ctx))
	again, err := b.mostRecentBuild(ctx, d.Name)
	if err != nil {
		return err
	}
	if again != nil && (recent == nil || again.ID != recent.ID) {
		return nil
	}
	b.log.Info("Building image "+d.Name, "image", d.Name)
	_, err = b.buildImage(ctx, cfg, d, formats)
	return err
}

func (b *Builder) checkManual(ctx context.Context, cfg *config.Config, d *config.DiskimageConfig) error {
	formats, ok, err := b.buildable(ctx, cfg, d)
	if err != nil || !ok {
		return err
	}
	if req, _, err := b.zk.BuildRequested(ctx, d.Name); err != nil || !req {
		return err
	}
	if !b.enoughSpace(cfg, d.Name) {
		return nil
	}
	lock := b.zk.NewLock(zkclient.BuildLockPath(d.Name))
	got, err := lock.TryAcquire(ctx)
	if err != nil || !got {
		return err
	}
	defer lock.Release(context.WithoutCancel(ctx))
	if req, _, err := b.zk.BuildRequested(ctx, d.Name); err != nil || !req {
		return err
	}
	b.log.Info("Manual build request for image "+d.Name, "image", d.Name)
	build, err := b.buildImage(ctx, cfg, d, formats)
	if err != nil {
		return err
	}
	if build != nil && build.State == zkclient.ImageReady {
		return b.zk.ClearBuildRequest(context.WithoutCancel(ctx), d.Name)
	}
	return nil
}

func isSuperset(have, want []string) bool {
	set := map[string]bool{}
	for _, f := range have {
		set[f] = true
	}
	for _, f := range want {
		if !set[f] {
			return false
		}
	}
	return true
}

// buildImage runs one build while the image build lock is held
// and returns the re-read final record.
func (b *Builder) buildImage(ctx context.Context, cfg *config.Config, d *config.DiskimageConfig, formats []string) (*zkclient.ImageBuild, error) {
	rec := &zkclient.ImageBuild{
		ImageName: d.Name,
		State:     zkclient.ImageBuilding,
		StateTime: b.stateTime(),
		Builder:   b.fqdn,
		BuilderID: b.builderID,
		Formats:   formats,
	}
	if err := b.zk.CreateBuild(ctx, rec); err != nil {
		return nil, fmt.Errorf("creating build record: %w", err)
	}
	log := b.logFor(ctx).With("image", d.Name, "build", rec.ID)

	// Watch for session loss during the DIB run.
	events := b.zk.Subscribe()
	ok, err := b.runDIB(ctx, cfg, d, rec.ID, formats, log)
	lost := false
drain:
	for {
		select {
		case ev := <-events:
			if ev.State == zkclient.StateLost {
				lost = true
			}
		default:
			break drain
		}
	}
	b.zk.Unsubscribe(events)
	if err != nil {
		log.Error(fmt.Sprintf("Image build failure for build %s of image %s", rec.ID, d.Name), "error", err)
		ok = false
	}
	if lost {
		log.Info("ZooKeeper lost while building " + d.Name)
		ok = false
	}

	wctx := context.WithoutCancel(ctx)
	if !b.zk.Connected() {
		log.Info("ZooKeeper suspended during build. Waiting")
		for !b.zk.Connected() {
			time.Sleep(time.Second)
		}
	}
	final := &zkclient.ImageBuild{
		ImageName:  d.Name,
		ID:         rec.ID,
		State:      zkclient.ImageFailed,
		StateTime:  b.stateTime(),
		Builder:    b.fqdn,
		BuilderID:  b.builderID,
		Username:   d.Username,
		PythonPath: d.PythonPath,
		ShellType:  d.ShellType,
	}
	if ok {
		final.State = zkclient.ImageReady
		final.Formats = formats
	}
	if err := b.zk.StoreBuild(wctx, final); err != nil {
		log.Error("unable to store build record; removing its files", "error", err)
		deleteLocalBuild(cfg.ImagesDir, d.Name, rec.ID, log)
		final.State = zkclient.ImageFailed
		return final, nil
	}
	if !ok {
		// Go divergence: a failed build's files are never used, so they
		// are removed at once (upstream waits for the cleanup worker).
		deleteLocalBuild(cfg.ImagesDir, d.Name, rec.ID, log)
	}
	again, err := b.zk.GetBuild(wctx, d.Name, rec.ID)
	if err != nil {
		return final, nil
	}
	return again, nil
}

// dibCommand returns the argv of the diskimage-builder run.
func dibCommand(d *config.DiskimageConfig, formats []string, outPrefix, installDir string) ([]string, error) {
	cmd := d.DibCmd
	if cmd == "" {
		cmd = "disk-image-create"
	}
	cmd = strings.ReplaceAll(cmd, "%p", installDir)
	fs := append([]string(nil), formats...)
	sort.Strings(fs)
	s := fmt.Sprintf("%s -x -t %s --checksum --no-tmpfs", cmd, strings.Join(fs, ","))
	for _, f := range fs {
		if f == "qcow2" {
			s += " --qemu-img-options 'compat=0.10'"
			break
		}
	}
	s += " -o " + outPrefix + " " + strings.Join(d.Elements, " ")
	return splitShell(s)
}

// dibEnv returns the environment of the DIB run: base plus DIB_RELEASE,
// DIB_IMAGE_NAME, DIB_IMAGE_FILENAME, ELEMENTS_PATH and env-vars (later
// entries win).
func dibEnv(base []string, d *config.DiskimageConfig, outPrefix, elementsDir string) []string {
	env := append([]string(nil), base...)
	set := func(k, v string) {
		for i, e := range env {
			if strings.HasPrefix(e, k+"=") {
				env = append(env[:i], env[i+1:]...)
				break
			}
		}
		env = append(env, k+"="+v)
	}
	set("DIB_RELEASE", d.Release)
	set("DIB_IMAGE_NAME", d.Name)
	set("DIB_IMAGE_FILENAME", outPrefix)
	if elementsDir != "" {
		set("ELEMENTS_PATH", elementsDir)
	}
	keys := make([]string, 0, len(d.EnvVars))
	for k := range d.EnvVars {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		set(k, d.EnvVars[k])
	}
	return env
}

// runDIB runs diskimage-builder and reports success.
func (b *Builder) runDIB(ctx context.Context, cfg *config.Config, d *config.DiskimageConfig, id string, formats []string, log *slog.Logger) (bool, error) {
	prefix := filepath.Join(cfg.ImagesDir, d.Name+"-"+id)
	argv, err := dibCommand(d, formats, prefix, b.opts.InstallDir)
	if err != nil {
		return false, err
	}
	logDir := cfg.BuildLogDir
	if logDir == "" {
		logDir = "/var/log/nodepool/builds"
	}
	if err := os.MkdirAll(logDir, 0o755); err != nil {
		return false, err
	}
	pruneBuildLogs(logDir, d.Name, cfg.BuildLogRetention, log)
	logPath := filepath.Join(logDir, d.Name+"-"+id+".log")
	lf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return false, err
	}
	defer lf.Close()

	log.Info("Running " + strings.Join(argv, " "))
	log.Info("Logging to " + logPath)
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = dibEnv(os.Environ(), d, prefix, cfg.ElementsDir)
	cmd.Stdout = lf
	cmd.Stderr = lf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		msg := err.Error()
		var pe *os.PathError
		if errors.As(err, &pe) {
			msg = pe.Err.Error()
		}
		return false, fmt.Errorf("Failed to exec '%s'. Error: '%s'", argv[0], msg)
	}
	started := time.Now()
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	timeout := d.BuildTimeout
	if timeout <= 0 {
		timeout = 8 * time.Hour
	}
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	timedOut := false
	var werr error
	select {
	case werr = <-done:
	case <-timer.C:
		timedOut = true
		log.Error(fmt.Sprintf("Build timeout for image %s, build %s (log: %s)", d.Name, id, logPath))
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		werr = <-done
	}
	// Kill any children left in the group (DIB forks many).
	_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	rc := 0
	if timedOut {
		rc = 1
	} else {
		if werr != nil {
			rc = 1
			var ee *exec.ExitError
			if errors.As(werr, &ee) {
				rc = ee.ExitCode()
				if rc < 0 {
					rc = 1
				}
			}
		}
		fmt.Fprintf(lf, "Exit code: %d\n", rc)
	}
	elapsed := time.Since(started)
	if rc != 0 {
		log.Info(fmt.Sprintf("DIB failed creating %s (%d) (timeout=%s)", d.Name, rc, pyBool(timedOut)), "rc", rc)
		b.buildStats(d.Name, rc, elapsed, nil)
		return false, nil
	}
	sizes := make(map[string]int64, len(formats))
	for _, f := range formats {
		size, err := allocatedSize(prefix + "." + f)
		if err != nil {
			b.buildStats(d.Name, rc, elapsed, nil)
			return false, fmt.Errorf("stat of image file: %w", err)
		}
		sizes[f] = size
	}
	log.Info(fmt.Sprintf("DIB image %s is built", d.Name))
	b.buildStats(d.Name, rc, elapsed, sizes)
	return true, nil
}

// allocatedSize returns the bytes a file occupies on disk (st_blocks*512,
// so a sparse image counts what it really uses).
func allocatedSize(path string) (int64, error) {
	var st syscall.Stat_t
	if err := syscall.Stat(path, &st); err != nil {
		return 0, &os.PathError{Op: "stat", Path: path, Err: err}
	}
	return int64(st.Blocks) * 512, nil
}

// buildStats reports one DIB run in one batch: the size
// of every format (successful builds only), the duration, the exit code
// and the time the build finished.
func (b *Builder) buildStats(image string, rc int, elapsed time.Duration, sizes map[string]int64) {
	key := "nodepool.dib_image_build." + image
	batch := b.stats.Batch(true)
	formats := make([]string, 0, len(sizes))
	for f := range sizes {
		formats = append(formats, f)
	}
	sort.Strings(formats)
	for _, f := range formats {
		batch.Gauge(key+"."+f+".size", float64(sizes[f]))
	}
	batch.Timing(key+".status.duration", elapsed)
	batch.Gauge(key+".status.rc", float64(rc))
	batch.Gauge(key+".status.last_build", float64(b.now().Unix()))
	batch.Send()
}

func pyBool(v bool) string {
	if v {
		return "True"
	}
	return "False"
}

// pruneBuildLogs deletes all but the newest max(retention, 1) build logs
// of an image, by modification time; a negative retention keeps all. Only
// files named <image>-<hex id>.log match (divergence: upstream matches any
// name starting with the image name).
func pruneBuildLogs(dir, image string, retention int, log *slog.Logger) {
	if retention < 0 {
		return
	}
	keep := max(retention, 1)
	entries, err := os.ReadDir(dir)
	if err != nil {
		return
	}
	re := regexp.MustCompile(`^` + regexp.QuoteMeta(image) + `-[0-9a-f]+\.log$`)
	type logFile struct {
		path  string
		mtime time.Time
	}
	var logs []logFile
	for _, e := range entries {
		if !e.Type().IsRegular() || !re.MatchString(e.Name()) {
			continue
		}
		info, err := e.Info()
		if err != nil {
			continue
		}
		logs = append(logs, logFile{filepath.Join(dir, e.Name()), info.ModTime()})
	}
	sort.SliceStable(logs, func(i, j int) bool { return logs[i].mtime.Before(logs[j].mtime) })
	for len(logs) > keep {
		log.Info("Deleting old build log " + logs[0].path)
		_ = os.Remove(logs[0].path)
		logs = logs[1:]
	}
}

// splitShell splits s into words like POSIX shell (quotes and backslashes
// respected, no expansion), as Python's shlex.split does.
func splitShell(s string) ([]string, error) {
	var words []string
	var cur strings.Builder
	inWord := false
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == ' ' || c == '\t' || c == '\n' || c == '\r':
			if inWord {
				words = append(words, cur.String())
				cur.Reset()
				inWord = false
			}
		case c == '\'':
			inWord = true
			j := strings.IndexByte(s[i+1:], '\'')
			if j < 0 {
				return nil, errors.New("No closing quotation")
			}
			cur.WriteString(s[i+1 : i+1+j])
			i += j + 1
		case c == '"':
			inWord = true
			i++
			for ; i < len(s) && s[i] != '"'; i++ {
				if s[i] == '\\' && i+1 < len(s) && strings.IndexByte("\\\"$`\n", s[i+1]) >= 0 {
					i++
				}
				cur.WriteByte(s[i])
			}
			if i >= len(s) {
				return nil, errors.New("No closing quotation")
			}
		case c == '\\':
			inWord = true
			if i+1 >= len(s) {
				return nil, errors.New("No escaped character")
			}
			i++
			cur.WriteByte(s[i])
		default:
			inWord = true
			cur.WriteByte(c)
		}
	}
	if inWord {
		words = append(words, cur.String())
	}
	if len(words) == 0 {
		return nil, errors.New("empty command")
	}
	return words, nil
}
