package aws

import (
	"context"
	"errors"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"

	"github.com/nodepool-go/nodepool/driver"
)

// maxTerminateBatch is the most instance ids one TerminateInstances call
// carries (EC2 takes 1000; smaller batches are recommended).
const maxTerminateBatch = 50

// terminateTimeout bounds one TerminateInstances call of the batcher.
const terminateTimeout = 2 * time.Minute

var errClosed = errors.New("aws: adapter closed")

type terminateReq struct {
	id   string
	done chan error // receives the outcome once
}

// terminateLoop sends the queued terminations in batches: it waits for
// one, takes whatever else is queued (up to maxTerminateBatch) and
// terminates them in one call. Under load that is one call for many
// deletes, leaving more of the rate for creates.
func (a *Adapter) terminateLoop() {
	defer close(a.loopDone)
	for {
		var batch []terminateReq
		select {
		case r := <-a.deleteQ:
			batch = append(batch, r)
		case <-a.stop:
			a.drainQueue()
			return
		}
	collect:
		for len(batch) < maxTerminateBatch {
			select {
			case r := <-a.deleteQ:
				batch = append(batch, r)
			default:
				break collect
			}
		}
		a.terminate(batch)
	}
}

func (a *Adapter) drainQueue() {
	for {
		select {
		case r := <-a.deleteQ:
			r.done <- errClosed
		default:
			return
		}
	}
}

// terminate terminates a batch; when EC2 refuses the batch because one id
// does not exist, each id is terminated on its own.
func (a *Adapter) terminate(batch []terminateReq) {
	ctx, cancel := context.WithTimeout(context.Background(), terminateTimeout)
	defer cancel()
	ids := make([]string, len(batch))
	for i, r := range batch {
		ids[i] = r.id
	}
	_, err := a.ec2.TerminateInstances(ctx, &ec2.TerminateInstancesInput{InstanceIds: ids})
	if err != nil {
		err = classify(err, true, "aws: terminating instances %v", ids)
	}
	if err != nil && driver.IsNotFound(err) && len(batch) > 1 {
		for _, r := range batch {
			a.terminate([]terminateReq{r})
		}
		return
	}
	for _, r := range batch {
		r.done <- err
	}
}

type deleteMachine struct {
	a          *Adapter
	id         string
	pending    chan error // the queued termination's outcome
	terminated time.Time  // when it was confirmed; zero before
}

// DeleteMachine returns a machine that terminates an instance (batched
// with other deletes) and waits until the listing shows it terminated or
// gone. An id EC2 does not know is already deleted.
func (a *Adapter) DeleteMachine(externalID string) driver.DeleteMachine {
	return &deleteMachine{a: a, id: externalID}
}

// Advance queues the termination on the first call, waits for its
// outcome, then watches the shared listing.
func (m *deleteMachine) Advance(ctx context.Context) (bool, error) {
	if m.terminated.IsZero() {
		if m.pending == nil {
			ch := make(chan error, 1)
			select {
			case m.a.deleteQ <- terminateReq{id: m.id, done: ch}:
				m.pending = ch
			case <-ctx.Done():
				return false, ctx.Err()
			}
			return false, nil
		}
		select {
		case err := <-m.pending:
			m.pending = nil
			if driver.IsNotFound(err) {
				return true, nil
			}
			if err != nil {
				return false, err
			}
			m.terminated = time.Now()
		default:
			return false, nil
		}
	}
	list, _, ok, err := m.a.instances.Fresh(ctx, m.terminated)
	if err != nil || !ok {
		return false, err
	}
	in, found := findInstance(list, m.id)
	return !found || stateOf(in) == ec2types.InstanceStateNameTerminated, nil
}
