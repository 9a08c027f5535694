package aws

import (
	"context"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"

	"github.com/nodepool-go/nodepool/driver"
)

type deleteMachine struct {
	a          *Adapter
	id         string
	terminated time.Time // when TerminateInstances answered; zero before
}

// DeleteMachine returns a machine that terminates an instance and waits
// until the listing shows it terminated or gone. An id EC2 does not know
// is already deleted.
func (a *Adapter) DeleteMachine(externalID string) driver.DeleteMachine {
	return &deleteMachine{a: a, id: externalID}
}

// Advance terminates the instance on the first call, then watches the
// shared listing.
func (m *deleteMachine) Advance(ctx context.Context) (bool, error) {
	if m.terminated.IsZero() {
		_, err := m.a.ec2.TerminateInstances(ctx, &ec2.TerminateInstancesInput{InstanceIds: []string{m.id}})
		if err != nil {
			err = classify(err, true, "aws: terminating instance %s", m.id)
			if driver.IsNotFound(err) {
				return true, nil
			}
			return false, err
		}
		m.terminated = time.Now()
		return false, nil
	}
	list, ok, err := m.a.instances.Fresh(ctx, m.terminated)
	if err != nil || !ok {
		return false, err
	}
	in, found := findInstance(list, m.id)
	return !found || stateOf(in) == ec2types.InstanceStateNameTerminated, nil
}
