package driver_test

import (
	"context"
	"errors"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/nodepool-go/nodepool/driver"
)

// namedDriver is a driver that only says who it is, through the adapter
// error it returns.
type namedDriver struct{ name string }

func (d namedDriver) ParseProvider(s *driver.Section) *driver.ProviderConfig {
	return driver.ParseProviderCommon(s)
}

func (d namedDriver) Open(context.Context, *driver.ProviderConfig, driver.Env) (driver.Adapter, error) {
	return nil, errors.New("opened " + d.name)
}

func TestRegistryLookupAndOverlay(t *testing.T) {
	base := driver.NewRegistry()
	base.Register("openstack", namedDriver{"stock openstack"})
	base.Register("aws", namedDriver{"stock aws"})

	mine := base.Overlay()
	mine.Register("openstack", namedDriver{"my openstack"}) // allowed: the name is taken only below
	mine.Register("mycloud", namedDriver{"mycloud"})

	open := func(r *driver.Registry, name string) error {
		_, err := r.Open(context.Background(), &driver.ProviderConfig{Name: "p", Driver: name}, driver.Env{})
		return err
	}
	require.EqualError(t, open(mine, "openstack"), "opened my openstack", "the overlay's driver wins")
	require.EqualError(t, open(mine, "aws"), "opened stock aws", "the base's driver is seen through the overlay")
	require.EqualError(t, open(base, "openstack"), "opened stock openstack", "the base is unchanged")
	err := open(base, "mycloud")
	require.ErrorIs(t, err, driver.ErrUnknownDriver)
	require.EqualError(t, err, `provider p uses driver "mycloud": no such driver in this program`)

	require.Equal(t, []string{"aws", "mycloud", "openstack"}, mine.Names())
	require.Equal(t, []string{"aws", "openstack"}, base.Names())

	base.Register("gce", namedDriver{"late"})
	_, ok := mine.Lookup("gce")
	require.True(t, ok, "drivers registered in the base later are seen")
}

func TestRegistryRefusesDuplicatesAndNil(t *testing.T) {
	r := driver.NewRegistry()
	r.Register("x", namedDriver{"x"})
	require.Panics(t, func() { r.Register("x", namedDriver{"again"}) })
	require.Panics(t, func() { r.Register("", namedDriver{"empty"}) })
	require.Panics(t, func() { r.Register("y", nil) })
	var none *driver.Registry
	_, ok := none.Lookup("x")
	require.False(t, ok, "a nil registry knows nothing")
}

func TestDefaultRegistryIsWhatRegisterFills(t *testing.T) {
	d, ok := driver.Default.Lookup("memory") // registered by this package's example
	require.True(t, ok)
	_, isMem := d.(memDriver)
	require.True(t, isMem)
	require.Contains(t, driver.Drivers(), "memory")
}

// stepDelete is a delete machine that needs steps calls, then reports
// done, or fails with err.
type stepDelete struct {
	steps int
	err   error
}

func (m *stepDelete) Advance(context.Context) (bool, error) {
	if m.steps > 0 {
		m.steps--
		return false, nil
	}
	return m.err == nil, m.err
}

func TestRunDelete(t *testing.T) {
	ctx := context.Background()
	require.NoError(t, driver.RunDelete(ctx, &stepDelete{steps: 3}, 0))
	require.NoError(t, driver.RunDelete(ctx, &stepDelete{err: driver.NotFoundError("gone")}, 0), "NotFound is done")
	require.EqualError(t, driver.RunDelete(ctx, &stepDelete{steps: 1, err: errors.New("boom")}, 0), "boom")
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	require.ErrorIs(t, driver.RunDelete(cctx, &stepDelete{steps: 1000}, 1), context.Canceled)
}
