package launcher

import (
	"context"

	"github.com/nodepool-go/nodepool/zkclient"
)

// The phases the launcher's ZooKeeper requests are counted under
// (nodepool_zookeeper_phase_requests_total{phase}); the node and request
// caches count their reads under "<root>:<reason>" themselves.
const (
	phaseAccept     = "accept"      // request lock and pending (or decline)
	phaseReuse      = "reuse"       // taking a ready node for a request
	phaseCreate     = "node-create" // node records in init
	phaseLockNode   = "node-lock"   // lock a new node and write it building
	phaseLaunch     = "launch"      // building and ready writes
	phaseFulfil     = "fulfil"      // request fulfilled, locks released
	phasePaused     = "paused"      // retries of paused requests
	phaseDeleteScan = "delete-scan" // orphan checks of the deleted-node worker
	phaseDeleteLock = "delete-lock" // locking a node to delete it
	phaseDelete     = "delete"      // deleting a locked node
	phaseCleanup    = "cleanup"     // periodic cleanup tasks
	phaseStatus     = "status"      // components, pool status, explanations
	phaseMain       = "main"        // reconcile and min-ready
	phaseStats      = "stats"       // the statistics worker
)

func inPhase(ctx context.Context, phase string) context.Context {
	return zkclient.WithPhase(ctx, phase)
}
