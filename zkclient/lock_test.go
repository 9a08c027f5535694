package zkclient_test

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/nodepool-go/nodepool/internal/zktest"
	"github.com/nodepool-go/nodepool/zkclient"
)

var contenderName = regexp.MustCompile(`^[0-9a-f]{32}__lock__\d{10}$`)

func ctxT(t testing.TB, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

func children(t testing.TB, c *zkclient.Client, dir string) []string {
	t.Helper()
	ch, err := c.Children(ctxT(t, 10*time.Second), dir)
	require.NoError(t, err)
	return ch
}

// waitFor polls cond until it holds or d passes.
func waitFor(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

const lockDir = "/nodepool/requests-lock/200-0000000001"

func TestLockMutualExclusion(t *testing.T) {
	c1, chroot := zktest.Connect(t)
	c2 := zktest.ConnectChroot(t, chroot)
	ctx := ctxT(t, 30*time.Second)

	l1 := c1.NewLock(lockDir)
	ok, err := l1.TryAcquire(ctx)
	require.NoError(t, err)
	require.True(t, ok)
	require.True(t, l1.Held())
	require.Regexp(t, `^`+lockDir+`/[0-9a-f]{32}__lock__\d{10}$`, l1.Node())

	_, err = l1.TryAcquire(ctx)
	require.Error(t, err, "a Lock object cannot be acquired twice")

	l2 := c2.NewLock(lockDir)
	ok, err = l2.TryAcquire(ctx)
	require.NoError(t, err)
	require.False(t, ok)
	require.False(t, l2.Held())
	require.Empty(t, l2.Node())
	ch := children(t, c1, lockDir)
	require.Len(t, ch, 1, "failed contender removed")
	require.Equal(t, l1.Node(), lockDir+"/"+ch[0])
	require.Regexp(t, contenderName, ch[0])

	locked, err := c2.IsLocked(ctx, lockDir)
	require.NoError(t, err)
	require.True(t, locked)

	require.NoError(t, l1.Release(ctx))
	require.Empty(t, children(t, c1, lockDir), "release removes the contender, keeps the dir")
	ok, err = l2.TryAcquire(ctx)
	require.NoError(t, err)
	require.True(t, ok)
	require.NoError(t, l2.Release(ctx))
}

// TestLockContention runs critical sections from several goroutines on two
// clients and checks that they never overlap.
func TestLockContention(t *testing.T) {
	c1, chroot := zktest.Connect(t)
	c2 := zktest.ConnectChroot(t, chroot)
	ctx := ctxT(t, 60*time.Second)
	var inside, entered atomic.Int32
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for i := 0; i < 6; i++ {
		c := c1
		if i%2 == 1 {
			c = c2
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := 0; j < 4; j++ {
				l := c.NewLock(lockDir)
				if err := l.Acquire(ctx); err != nil {
					errs <- err
					return
				}
				if inside.Add(1) != 1 {
					errs <- errors.New("two holders at once")
				}
				entered.Add(1)
				time.Sleep(2 * time.Millisecond)
				inside.Add(-1)
				if err := l.Release(ctx); err != nil {
					errs <- err
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	require.EqualValues(t, 24, entered.Load())
	require.Empty(t, children(t, c1, lockDir))
}

func TestLockBlockingAcquire(t *testing.T) {
	c1, chroot := zktest.Connect(t)
	c2 := zktest.ConnectChroot(t, chroot)
	ctx := ctxT(t, 30*time.Second)
	l1 := c1.NewLock(lockDir)
	require.NoError(t, l1.Acquire(ctx))

	l2 := c2.NewLock(lockDir)
	done := make(chan error, 1)
	go func() { done <- l2.Acquire(ctx) }()
	waitFor(t, 30*time.Second, "waiter's contender", func() bool { return len(children(t, c1, lockDir)) == 2 })
	select {
	case err := <-done:
		t.Fatalf("Acquire returned while the lock was held: %v", err)
	case <-time.After(300 * time.Millisecond):
	}
	require.NoError(t, l1.Release(ctx))
	select {
	case err := <-done:
		require.NoError(t, err)
	case <-time.After(10 * time.Second):
		t.Fatal("waiter did not get the lock after release")
	}
	require.True(t, l2.Held())
	require.NoError(t, l2.Release(ctx))
}

func TestLockAcquireTimeout(t *testing.T) {
	c1, chroot := zktest.Connect(t)
	c2 := zktest.ConnectChroot(t, chroot)
	l1 := c1.NewLock(lockDir)
	require.NoError(t, l1.Acquire(ctxT(t, 10*time.Second)))

	l2 := c2.NewLock(lockDir)
	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	err := l2.Acquire(ctx)
	require.ErrorIs(t, err, zkclient.ErrLockTimeout)
	require.GreaterOrEqual(t, time.Since(start), 450*time.Millisecond)
	require.False(t, l2.Held())
	require.Len(t, children(t, c1, lockDir), 1, "timed-out contender removed")

	// A cancelled (not timed-out) context reports cancellation.
	ctx2, cancel2 := context.WithCancel(context.Background())
	go func() { time.Sleep(200 * time.Millisecond); cancel2() }()
	err = c2.NewLock(lockDir).Acquire(ctx2)
	require.ErrorIs(t, err, context.Canceled)
	require.Len(t, children(t, c1, lockDir), 1)
	require.NoError(t, l1.Release(ctxT(t, 10*time.Second)))
}

func TestLockOrdering(t *testing.T) {
	c0, chroot := zktest.Connect(t)
	ctx := ctxT(t, 60*time.Second)
	holder := c0.NewLock(lockDir)
	require.NoError(t, holder.Acquire(ctx))

	var mu sync.Mutex
	var order []int
	var wg sync.WaitGroup
	for i := 1; i <= 3; i++ {
		c := zktest.ConnectChroot(t, chroot)
		l := c.NewLock(lockDir, zkclient.WithIdentifier(fmt.Sprint("waiter-", i)))
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := l.Acquire(ctx); err != nil {
				t.Errorf("waiter %d: %v", i, err)
				return
			}
			mu.Lock()
			order = append(order, i)
			mu.Unlock()
			time.Sleep(50 * time.Millisecond)
			if err := l.Release(ctx); err != nil {
				t.Errorf("waiter %d release: %v", i, err)
			}
		}()
		// Queue the waiters one after the other so their sequence order is known.
		waitFor(t, 30*time.Second, "contender queued", func() bool { return len(children(t, c0, lockDir)) == i+1 })
	}
	ids, err := c0.Contenders(ctx, lockDir)
	require.NoError(t, err)
	require.Equal(t, []string{"", "waiter-1", "waiter-2", "waiter-3"}, ids)
	require.NoError(t, holder.Release(ctx))
	wg.Wait()
	require.Equal(t, []int{1, 2, 3}, order)
}

// TestLockInProcessGuard: two Lock objects of one client on one directory
// never both contend in ZooKeeper.
func TestLockInProcessGuard(t *testing.T) {
	c, _ := zktest.Connect(t)
	ctx := ctxT(t, 30*time.Second)
	l1, l2 := c.NewLock(lockDir), c.NewLock(lockDir)
	ok, err := l1.TryAcquire(ctx)
	require.NoError(t, err)
	require.True(t, ok)
	ok, err = l2.TryAcquire(ctx)
	require.NoError(t, err)
	require.False(t, ok)
	require.Len(t, children(t, c, lockDir), 1)

	done := make(chan error, 1)
	go func() { done <- l2.Acquire(ctx) }()
	select {
	case err := <-done:
		t.Fatalf("second Acquire returned while the first holds: %v", err)
	case <-time.After(300 * time.Millisecond):
	}
	require.Len(t, children(t, c, lockDir), 1, "the in-process waiter has no znode")
	require.NoError(t, l1.Release(ctx))
	require.NoError(t, <-done)
	require.True(t, l2.Held())

	// A waiting in-process Acquire honours its deadline.
	short, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
	defer cancel()
	require.ErrorIs(t, c.NewLock(lockDir).Acquire(short), zkclient.ErrLockTimeout)
	require.NoError(t, l2.Release(ctx))

	// Different directories do not interfere.
	a, b := c.NewLock(lockDir), c.NewLock(lockDir+"-other")
	require.NoError(t, a.Acquire(ctx))
	require.NoError(t, b.Acquire(ctx))
	require.NoError(t, a.Release(ctx))
	require.NoError(t, b.Release(ctx))
}

func TestLockContendersIdentifiers(t *testing.T) {
	c1, chroot := zktest.Connect(t)
	c2 := zktest.ConnectChroot(t, chroot)
	ctx := ctxT(t, 30*time.Second)

	ids, err := c1.Contenders(ctx, lockDir)
	require.NoError(t, err)
	require.Empty(t, ids, "no directory, no contenders")

	h := c1.NewLock(lockDir, zkclient.WithIdentifier("NodePool:metastatic:prov"))
	require.NoError(t, h.Acquire(ctx))
	wctx, cancel := context.WithCancel(ctx)
	w := c2.NewLock(lockDir, zkclient.WithIdentifier("nl01-1234"))
	done := make(chan error, 1)
	go func() { done <- w.Acquire(wctx) }()
	waitFor(t, 30*time.Second, "waiter queued", func() bool { return len(children(t, c1, lockDir)) == 2 })
	ids, err = c2.Contenders(ctx, lockDir)
	require.NoError(t, err)
	require.Equal(t, []string{"NodePool:metastatic:prov", "nl01-1234"}, ids)
	cancel()
	require.ErrorIs(t, <-done, context.Canceled)
	ids, err = c2.Contenders(ctx, lockDir)
	require.NoError(t, err)
	require.Equal(t, []string{"NodePool:metastatic:prov"}, ids)
	require.NoError(t, h.Release(ctx))
}

func TestLockIgnoresForeignChildren(t *testing.T) {
	c, _ := zktest.Connect(t)
	ctx := ctxT(t, 30*time.Second)
	// Created before our contender, so they have lower sequence numbers.
	for _, name := range []string{"foo", "lock-", "_c_0123-lock-", "abc__lock__", "x__rlock__", "x__lock__12345"} {
		flags := zkclient.Sequential
		if name == "foo" || name == "x__lock__12345" {
			flags = zkclient.Persistent
		}
		_, err := c.Create(ctx, lockDir+"/"+name, nil, flags, true)
		require.NoError(t, err, name)
	}
	// "abc__lock__<seq>" does match kazoo's pattern: it is a real contender.
	l := c.NewLock(lockDir)
	ok, err := l.TryAcquire(ctx)
	require.NoError(t, err)
	require.False(t, ok, "abc__lock__<seq> is a contender ahead of us")
	for _, ch := range children(t, c, lockDir) {
		if len(ch) > 11 && ch[:11] == "abc__lock__" {
			require.NoError(t, c.Delete(ctx, lockDir+"/"+ch, -1))
		}
	}
	ok, err = l.TryAcquire(ctx)
	require.NoError(t, err)
	require.True(t, ok, "non-matching children are ignored")
	ids, err := c.Contenders(ctx, lockDir)
	require.NoError(t, err)
	require.Equal(t, []string{""}, ids)
	require.NoError(t, l.Release(ctx))
	locked, err := c.IsLocked(ctx, lockDir)
	require.NoError(t, err)
	require.False(t, locked)
}

func TestSortContenders(t *testing.T) {
	tests := []struct {
		name string
		in   []string
		want []string
	}{
		{"sequence order", []string{"b__lock__0000000003", "a__lock__0000000001", "c__lock__0000000002"},
			[]string{"a__lock__0000000001", "c__lock__0000000002", "b__lock__0000000003"}},
		{"foreign ignored", []string{"lock", "x-lock-0000000001", "r__rlock__0000000000", "a__lock__000000001", "a__lock__0000000005"},
			[]string{"a__lock__0000000005"}},
		{"overflowed negative first", []string{"a__lock__0000000001", "b__lock__-2147483648"},
			[]string{"b__lock__-2147483648", "a__lock__0000000001"}},
		{"search not match", []string{"prefix-junk__lock__0000000009"}, []string{"prefix-junk__lock__0000000009"}},
		{"empty", nil, []string{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			require.Equal(t, tt.want, zkclient.SortContenders(tt.in))
		})
	}
}

func TestNodeLockDeletedNode(t *testing.T) {
	c, _ := zktest.Connect(t)
	ctx := ctxT(t, 30*time.Second)
	require.NoError(t, c.EnsurePath(ctx, zkclient.NodeRoot))

	l := c.NodeLock("0000000099")
	ok, err := l.TryAcquire(ctx)
	require.ErrorIs(t, err, zkclient.ErrNoNode)
	require.False(t, ok)
	require.ErrorIs(t, c.NodeLock("0000000099").Acquire(ctx), zkclient.ErrNoNode)
	exists, _, err := c.Exists(ctx, zkclient.NodePath("0000000099"))
	require.NoError(t, err)
	require.False(t, exists, "locking a deleted node must not resurrect it")

	// An existing node gets its lock directory on demand.
	n := &zkclient.Node{State: zkclient.NodeReady}
	id, err := c.CreateNode(ctx, n)
	require.NoError(t, err)
	nl := c.NodeLock(id)
	require.NoError(t, nl.Acquire(ctx))
	require.Equal(t, zkclient.NodeLockPath(id), nl.Dir())
	require.Len(t, children(t, c, zkclient.NodeLockPath(id)), 1)
	require.NoError(t, nl.Release(ctx))
}

func TestLockReleaseIdempotent(t *testing.T) {
	c, _ := zktest.Connect(t)
	ctx := ctxT(t, 30*time.Second)
	l := c.NewLock(lockDir)
	require.NoError(t, l.Release(ctx), "release before acquire")
	require.NoError(t, l.Acquire(ctx))
	require.NoError(t, l.Release(ctx))
	require.NoError(t, l.Release(ctx))
	require.False(t, l.Held())

	// The contender vanished underneath us (force-unlock): release is quiet.
	require.NoError(t, l.Acquire(ctx))
	require.NoError(t, c.DeleteRecursive(ctx, lockDir))
	require.NoError(t, l.Release(ctx))
	require.False(t, l.Held())
	// The same object can be used again.
	require.NoError(t, l.Acquire(ctx))
	require.NoError(t, l.Release(ctx))
}

func TestPersistentContender(t *testing.T) {
	c1, chroot := zktest.Connect(t)
	ctx := ctxT(t, 30*time.Second)
	l := c1.NewLock(lockDir, zkclient.PersistentContender(), zkclient.WithIdentifier("NodePool:metastatic:p"))
	require.NoError(t, l.Acquire(ctx))
	require.Nil(t, l.Lost())
	c1.Close()

	c2 := zktest.ConnectChroot(t, chroot)
	ids, err := c2.Contenders(ctx, lockDir)
	require.NoError(t, err)
	require.Equal(t, []string{"NodePool:metastatic:p"}, ids, "persistent contender survives its session")
	ok, err := c2.NewLock(lockDir).TryAcquire(ctx)
	require.NoError(t, err)
	require.False(t, ok)
}

// TestLockExpiredContext: a deadline that has already passed is reported
// as ErrLockTimeout (not a raw context error) and leaves nothing behind.
func TestLockExpiredContext(t *testing.T) {
	c, _ := zktest.Connect(t)
	require.NoError(t, c.EnsurePath(ctxT(t, 10*time.Second), lockDir))
	ctx, cancel := context.WithDeadline(context.Background(), time.Now().Add(-time.Second))
	defer cancel()
	l := c.NewLock(lockDir)
	require.ErrorIs(t, l.Acquire(ctx), zkclient.ErrLockTimeout)
	require.False(t, l.Held())
	require.Empty(t, children(t, c, lockDir))
	// The in-process guard was released: a fresh attempt works.
	require.NoError(t, c.NewLock(lockDir).Acquire(ctxT(t, 10*time.Second)))
}

// TestLockDirLikely: the hint saves a round trip when the directory
// exists and changes nothing else: a missing directory is still created,
// a held lock is still refused, a deleted node is not resurrected, and a
// failed check still leaves the lock untaken.
func TestLockDirLikely(t *testing.T) {
	c, chroot := zktest.Connect(t)
	other := zktest.ConnectChroot(t, chroot)
	ctx := ctxT(t, 30*time.Second)
	require.NoError(t, c.EnsurePath(ctx, zkclient.NodeRoot))
	n := &zkclient.Node{State: zkclient.NodeUsed}
	id, err := c.CreateNode(ctx, n)
	require.NoError(t, err)
	check := zkclient.CheckOp{Path: zkclient.NodePath(id), Version: n.Version}

	// No lock directory yet: created on the way.
	l := c.NodeLock(id, zkclient.DirLikely())
	got, err := l.TryAcquireWith(ctx, check)
	require.NoError(t, err)
	require.True(t, got)
	require.Len(t, children(t, c, zkclient.NodeLockPath(id)), 1)

	// Held by another client: refused, and no contender of ours stays.
	ol := other.NodeLock(id, zkclient.DirLikely())
	got, err = ol.TryAcquireWith(ctx, check)
	require.NoError(t, err)
	require.False(t, got)
	require.Len(t, children(t, c, zkclient.NodeLockPath(id)), 1)
	require.NoError(t, l.Release(ctx))

	// Free, directory present: taken; a stale version is refused.
	got, err = other.NodeLock(id, zkclient.DirLikely()).TryAcquireWith(ctx, zkclient.CheckOp{Path: zkclient.NodePath(id), Version: n.Version + 1})
	require.ErrorIs(t, err, zkclient.ErrPrecondition)
	require.False(t, got)
	require.Empty(t, children(t, c, zkclient.NodeLockPath(id)))
	got, err = ol.TryAcquireWith(ctx, check)
	require.NoError(t, err)
	require.True(t, got)
	require.NoError(t, ol.Release(ctx))

	// A deleted node stays deleted.
	require.NoError(t, c.DeleteNode(ctx, n, nil))
	got, err = c.NodeLock(id, zkclient.DirLikely()).TryAcquireWith(ctx, check)
	require.False(t, got)
	require.ErrorIs(t, err, zkclient.ErrNoNode)
	exists, _, err := c.Exists(ctx, zkclient.NodePath(id))
	require.NoError(t, err)
	require.False(t, exists)
}

// TestTryAcquireWithChecksHoldForTheHolder: a contender that became the
// holder only after the previous holder changed the checked znode and
// released must not get the lock (the launcher would act on a stale view).
func TestTryAcquireWithChecksHoldForTheHolder(t *testing.T) {
	c1, chroot := zktest.Connect(t)
	c2 := zktest.ConnectChroot(t, chroot)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	_, err := c1.Create(ctx, "/obj", []byte("0"), zkclient.Persistent, true)
	require.NoError(t, err)
	got, stale := 0, 0
	for i := 0; i < 150; i++ {
		a := c1.NewLock("/obj-lock")
		require.NoError(t, a.Acquire(ctx))
		_, st, err := c1.Get(ctx, "/obj")
		require.NoError(t, err)
		var wg sync.WaitGroup
		wg.Add(1)
		go func() {
			defer wg.Done()
			b := c2.NewLock("/obj-lock")
			ok, err := b.TryAcquireWith(ctx, zkclient.CheckOp{Path: "/obj", Version: st.Version})
			if err != nil || !ok {
				return
			}
			got++
			if _, now, err := c2.Get(ctx, "/obj"); err == nil && now.Version != st.Version {
				stale++
			}
			_ = b.Release(ctx)
		}()
		time.Sleep(time.Duration(i%3) * 100 * time.Microsecond)
		_, err = c1.Set(ctx, "/obj", []byte(fmt.Sprint(i)), -1)
		require.NoError(t, err)
		require.NoError(t, a.Release(ctx))
		wg.Wait()
	}
	require.Zero(t, stale, "the lock was granted with a check that no longer held (%d of %d grants)", stale, got)
}
