package launcher

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/nodepool-go/nodepool/internal/logconfig"

	"github.com/nodepool-go/nodepool/driver"
	"github.com/nodepool-go/nodepool/internal/keyscan"
	"github.com/nodepool-go/nodepool/zkclient"
)

// deleteTimeout bounds one node deletion before it is retried.
const deleteTimeout = 600 * time.Second

// nodeLaunch drives one node from building to ready (or failed/aborted)
// through the driver's create machine, with launch-retries attempts.
type nodeLaunch struct {
	h      *handler
	p      *provider
	node   *zkclient.Node
	lock   *zkclient.Lock
	label  *driver.LabelConfig
	az     string
	imgExt string

	attempts  int
	machine   driver.CreateMachine
	cleanup   driver.DeleteMachine
	started   time.Time // attempt start
	firstTick time.Time
	scan      chan scanResult
	inst      *driver.Instance
	// transient counts the transient errors in a row of this attempt;
	// retryAt is when the step that hit the last one runs again.
	transient int
	retryAt   time.Time
	// fieldsStored: the building record already carries the fields.
	fieldsStored bool
	finished     atomic.Bool // set last; readers may then read node
}

// log is the launch's logger, named as upstream's node launcher and
// carrying the request's event and id.
func (nl *nodeLaunch) log() *slog.Logger {
	l := nl.p.log.With(logconfig.LoggerKey, "nodepool.StateMachineNodeLauncher."+nl.p.cfg.Name)
	if nl.h != nil {
		l = l.With(logconfig.EventKey, nl.h.req.EventID, logconfig.RequestKey, nl.h.req.ID)
	}
	return l
}

type scanResult struct {
	keys []string
	err  error
}

// abandon stops tracking the launch at shutdown: the node stays building
// and becomes unlocked with the session, so any launcher deletes it.
func (nl *nodeLaunch) abandon() { nl.finished.Store(true) }

// A launch attempt rides out up to transientRetries transient driver
// errors in a row, retrying the same step after transientPause, doubled
// each time; one more counts as a failed attempt.
const (
	transientRetries = 5
	transientPause   = 500 * time.Millisecond
)

// step advances the launch; it returns true once the node left building.
func (nl *nodeLaunch) step(ctx context.Context) bool {
	if nl.finished.Load() {
		return true
	}
	now := nl.p.l.now()
	if nl.firstTick.IsZero() {
		nl.firstTick = now
	}
	if !nl.lock.Held() {
		nl.fail(ctx, errors.New("node lock lost with the ZooKeeper session"), "error.zksession", false)
		return true
	}
	if nl.machine == nil && nl.cleanup == nil {
		if err := nl.prepare(ctx); err != nil {
			return nl.attemptFailed(ctx, err)
		}
	}
	if nl.cleanup == nil && nl.p.cfg.LaunchTimeout > 0 && now.Sub(nl.started) > nl.p.cfg.LaunchTimeout {
		return nl.attemptFailed(ctx, fmt.Errorf("timeout waiting for instance creation after %s", nl.p.cfg.LaunchTimeout))
	}
	if nl.cleanup != nil {
		done, err := nl.cleanup.Advance(ctx)
		if err != nil && !driver.IsNotFound(err) {
			nl.log().Warn("deleting the instance of a failed attempt failed; retrying", "node", nl.node.ID, "error", err)
			nl.cleanup = nl.p.adapter.DeleteMachine(nl.node.ExternalID)
			return false
		}
		if done || driver.IsNotFound(err) {
			nl.cleanup = nil
			nl.node.ExternalID = ""
			if err := nl.prepare(ctx); err != nil {
				return nl.attemptFailed(ctx, err)
			}
		}
		return false
	}
	if nl.inst == nil {
		if now.Before(nl.retryAt) {
			return false
		}
		inst, err := nl.machine.Advance(ctx)
		if id := nl.machine.ExternalID(); id != "" && nl.node.ExternalID == "" && (inst == nil || err != nil) {
			// Record the cloud id at once, so a crash cannot leak it.
			nl.node.ExternalID = id
			if err := nl.store(ctx); err != nil {
				return nl.storeFailed(ctx, err)
			}
		}
		if err != nil {
			if driver.IsQuota(err) {
				nl.abort(ctx, err)
				return true
			}
			if driver.IsTransient(err) && nl.transient < transientRetries {
				nl.transient++
				pause := transientPause << (nl.transient - 1)
				nl.retryAt = now.Add(pause)
				nl.log().Info("transient error; retrying the same step", "node", nl.node.ID,
					"retry", nl.transient, "of", transientRetries, "after", pause, "error", err)
				return false
			}
			return nl.attemptFailed(ctx, err)
		}
		nl.transient = 0
		if inst == nil {
			return false
		}
		nl.inst = inst
		nl.copyInstance(inst)
		if len(inst.HostKeys) > 0 {
			// Keys known: the node goes ready with a single write below.
			nl.node.HostKeys = append([]string(nil), inst.HostKeys...)
		} else if nl.label.HostKeyChecking {
			// The label's setting decides (it defaults to the pool's).
			if err := nl.store(ctx); err != nil {
				return nl.storeFailed(ctx, err)
			}
			nl.scan = make(chan scanResult, 1)
			go func() {
				keys, err := keyscan.Scan(ctx, nl.node.InterfaceIP, nl.node.Port(), nl.node.ConnectionType, nl.p.cfg.BootTimeout)
				nl.scan <- scanResult{keys, err}
			}()
		}
	}
	if nl.scan != nil {
		select {
		case r := <-nl.scan:
			nl.scan = nil
			if r.err != nil {
				nl.inst = nil
				return nl.attemptFailed(ctx, driver.WithMetric(r.err, "error.keyscan"))
			}
			if len(r.keys) > 0 {
				nl.node.HostKeys = r.keys
			}
		default:
			return false
		}
	}
	nl.node.State = zkclient.NodeReady
	nl.node.StateTime = unixNow(nl.p.l.now())
	if err := nl.store(ctx); err != nil {
		return nl.storeFailed(ctx, err)
	}
	nl.p.l.stats.launch(nl, "ready")
	nl.finished.Store(true)
	return true
}

func (nl *nodeLaunch) pool() *driver.PoolConfig { return nl.h.pw.pool }

// fillFields sets the node's image and connection settings from its label
// (and the newest ready upload for diskimage labels), and its resources.
func (nl *nodeLaunch) fillFields(ctx context.Context) error {
	n := nl.node
	lc := nl.label
	nl.imgExt = ""
	if lc.Diskimage != "" {
		up, err := nl.p.recentUpload(ctx, lc.Diskimage)
		if err != nil {
			return err
		}
		if up == nil {
			return driver.WithMetric(fmt.Errorf("unable to find current cloud image %s in %s", lc.Diskimage, nl.p.cfg.Name), "error.nodepool")
		}
		nl.imgExt = up.ExternalID
		n.ImageID = up.Path()
	} else {
		n.ImageID = lc.CloudImage
	}
	n.Username = lc.Username
	n.PythonPath = lc.PythonPath
	n.ShellType = lc.ShellType
	n.ConnectionType = lc.ConnectionType
	port := lc.ConnectionPort
	if port == 0 {
		port = driver.DefaultPort(lc.ConnectionType)
	}
	n.SetPort(port)
	n.Resources = nl.p.labelNeed(ctx, nl.pool(), lc.Name).Map()
	return nil
}

// prepare starts a new attempt: node fields (unless the launch already
// stored them with the building record) and a new create machine.
func (nl *nodeLaunch) prepare(ctx context.Context) error {
	nl.attempts++
	nl.started = nl.p.l.now()
	n := nl.node
	if nl.fieldsStored {
		nl.fieldsStored = false // a retry refreshes them
	} else {
		if err := nl.fillFields(ctx); err != nil {
			return err
		}
		if err := nl.store(ctx); err != nil {
			return err
		}
	}
	nl.machine = nl.p.adapter.CreateMachine(driver.CreateSpec{
		Hostname:        "np" + n.ID,
		Label:           nl.label,
		Pool:            nl.pool(),
		ImageExternalID: nl.imgExt,
		Metadata: map[string]string{
			driver.MetaNodeID:       n.ID,
			driver.MetaPoolName:     nl.pool().Name,
			driver.MetaProviderName: nl.p.cfg.Name,
		},
		AZ:      nl.az,
		Request: nl.h.requestInfo(),
	})
	return nil
}

func (nl *nodeLaunch) copyInstance(in *driver.Instance) {
	n := nl.node
	n.InterfaceIP = in.InterfaceIP
	if nl.pool().UseInternalIP {
		if in.PrivateIPv4 != "" {
			n.InterfaceIP = in.PrivateIPv4
		} else if in.PrivateIPv6 != "" {
			n.InterfaceIP = in.PrivateIPv6
		}
	}
	if in.ExternalID != "" {
		n.ExternalID = in.ExternalID
	}
	n.PublicIPv4, n.PrivateIPv4, n.PublicIPv6 = in.PublicIPv4, in.PrivateIPv4, in.PublicIPv6
	n.HostID, n.Cloud, n.Region = in.HostID, in.Cloud, in.Region
	if in.AZ != "" {
		n.AZ = in.AZ
	}
	if in.DriverData != nil {
		n.DriverData = json.RawMessage(in.DriverData)
	}
	if in.Slot != nil {
		v := *in.Slot
		n.Slot = &v
	}
	if in.Username != "" {
		n.Username = in.Username
	}
	if in.PythonPath != "" {
		n.PythonPath = in.PythonPath
	}
	if in.ShellType != "" {
		n.ShellType = in.ShellType
	}
	if in.ConnectionType != "" {
		n.ConnectionType = in.ConnectionType
	}
	if in.ConnectionPort != 0 {
		n.SetPort(in.ConnectionPort)
	}
	if in.ConnectionPortObject != nil {
		n.ConnectionPort = append(json.RawMessage(nil), in.ConnectionPortObject...)
	}
}

func (nl *nodeLaunch) store(ctx context.Context) error {
	return nl.p.l.zk.StoreNode(ctx, nl.node, nl.lock)
}

// storeFailed handles a failed write: a lost lock means our session is
// gone and the node belongs to whoever cleans it up now.
func (nl *nodeLaunch) storeFailed(ctx context.Context, err error) bool {
	if errors.Is(err, zkclient.ErrLockLost) || errors.Is(err, zkclient.ErrSessionLost) {
		nl.fail(ctx, err, "error.zksession", false)
		return true
	}
	if zkclient.IsTooLarge(err) {
		// What the cloud or the server reported (host keys, driver
		// data) does not fit a node record: retrying cannot help. The
		// launch fails and is recorded without that data; the instance
		// id stays, so the instance is deleted with the node.
		nl.node.HostKeys, nl.node.DriverData = nil, nil
		nl.fail(ctx, err, "error.toolarge", true)
		return true
	}
	nl.log().Warn("storing node failed; will retry", "node", nl.node.ID, "error", err)
	return false
}

// abort marks the node aborted after a cloud quota error: no retry is
// used up, the handler pauses and relaunches later.
func (nl *nodeLaunch) abort(ctx context.Context, err error) {
	nl.log().Info("launch aborted: cloud quota exceeded", "node", nl.node.ID, "error", err)
	nl.p.invalidateQuota()
	nl.node.State = zkclient.NodeAborted
	nl.node.StateTime = unixNow(nl.p.l.now())
	if serr := nl.store(ctx); serr != nil {
		nl.log().Warn("storing aborted node failed", "node", nl.node.ID, "error", serr)
	}
	nl.p.l.stats.launch(nl, "error.quota")
	nl.finished.Store(true)
}

// attemptFailed counts a failed attempt and either retries or fails.
func (nl *nodeLaunch) attemptFailed(ctx context.Context, err error) bool {
	retries := nl.p.cfg.LaunchRetries
	if retries <= 0 {
		retries = 1
	}
	nl.log().Warn(fmt.Sprintf("launch attempt %d/%d failed", nl.attempts, retries), "node", nl.node.ID, "error", err)
	nl.p.l.stats.launch(nl, driver.MetricOf(err))
	if nl.machine != nil && nl.machine.ExternalID() != "" && nl.node.ExternalID == "" {
		nl.node.ExternalID = nl.machine.ExternalID()
	}
	nl.machine = nil
	nl.inst = nil
	nl.transient, nl.retryAt = 0, time.Time{}
	if nl.attempts >= retries {
		nl.fail(ctx, err, "", true)
		return true
	}
	if nl.node.ExternalID != "" {
		nl.cleanup = nl.p.adapter.DeleteMachine(nl.node.ExternalID)
		if err := nl.store(ctx); err != nil {
			return nl.storeFailed(ctx, err)
		}
		return false
	}
	if err := nl.prepare(ctx); err != nil {
		return nl.attemptFailed(ctx, err)
	}
	return false
}

// fail ends the launch with the node failed; the record is written when
// we still hold the lock (a deliberate fix: upstream leaves it building).
func (nl *nodeLaunch) fail(ctx context.Context, err error, metric string, persist bool) {
	if metric != "" {
		nl.p.l.stats.launch(nl, metric)
	}
	nl.node.State = zkclient.NodeFailed
	nl.node.StateTime = unixNow(nl.p.l.now())
	if persist {
		if serr := nl.store(ctx); serr != nil {
			nl.log().Warn("storing failed node failed", "node", nl.node.ID, "error", serr)
		}
	}
	nl.log().Error("launch failed", "node", nl.node.ID, "error", err)
	nl.finished.Store(true)
}

// nodeDelete deletes one node's instance and then its record.
type nodeDelete struct {
	p       *provider
	node    *zkclient.Node
	lock    *zkclient.Lock
	machine driver.DeleteMachine
	started time.Time
}

// log is the deletion's logger, named as upstream's node deleter.
func (d *nodeDelete) log() *slog.Logger {
	return d.p.log.With(logconfig.LoggerKey, "nodepool.StateMachineNodeDeleter."+d.p.cfg.Name)
}

func (d *nodeDelete) release() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = d.lock.Release(ctx)
}

// markDeleting records that the deletion started; false when the record
// could not be written (gone, or the lock lost).
func (d *nodeDelete) markDeleting(ctx context.Context) bool {
	if d.node.State == zkclient.NodeDeleting {
		return true
	}
	d.node.State = zkclient.NodeDeleting
	d.node.StateTime = unixNow(d.p.l.now())
	if err := d.p.l.zk.StoreNode(ctx, d.node, d.lock); err != nil {
		if !errors.Is(err, zkclient.ErrNoNode) {
			d.log().Warn("marking node deleting failed", "node", d.node.ID, "error", err)
		}
		return false
	}
	return true
}

// step advances the deletion; true when it is over (done or given up).
func (d *nodeDelete) step(ctx context.Context) bool {
	l := d.p.l
	if !d.lock.Held() {
		return true
	}
	if d.started.IsZero() {
		d.started = l.now()
		done := d.node.ExternalID == ""
		if !done {
			d.machine = d.p.adapter.DeleteMachine(d.node.ExternalID)
			var err error
			done, err = d.machine.Advance(ctx)
			if driver.IsNotFound(err) {
				done, err = true, nil
			}
			if err != nil {
				d.log().Warn("deleting instance failed; will retry", "node", d.node.ID, "external_id", d.node.ExternalID, "error", err)
				d.markDeleting(ctx)
				d.release()
				return true
			}
		}
		// A delete that finished at once needs no "deleting" record.
		if !done {
			if !d.markDeleting(ctx) {
				d.release()
				return true
			}
			return false
		}
		d.machine = nil
	}
	if d.machine != nil {
		if l.now().Sub(d.started) > deleteTimeout {
			d.log().Error("timeout deleting instance; will retry", "node", d.node.ID, "external_id", d.node.ExternalID)
			d.release()
			return true
		}
		done, err := d.machine.Advance(ctx)
		if err != nil && !driver.IsNotFound(err) {
			d.log().Warn("deleting instance failed; will retry", "node", d.node.ID, "external_id", d.node.ExternalID, "error", err)
			d.release()
			return true
		}
		if !done && err == nil {
			return false
		}
	}
	if err := l.zk.DeleteLockedNode(ctx, d.node, d.lock); err != nil {
		d.log().Warn("removing node record failed", "node", d.node.ID, "error", err)
		d.release()
		return true
	}
	d.log().Info("deleted node", "node", d.node.ID, "external_id", d.node.ExternalID)
	d.p.pending.forget(d.node.ID)
	d.p.kickStatic()
	l.stats.reporter().DeletedNode(d.p.cfg.Name)
	return true
}

func unixNow(t time.Time) float64 {
	return float64(t.UnixNano()) / 1e9
}
