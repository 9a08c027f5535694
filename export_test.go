package nodepool

import "context"

// CleanupPass runs every cleanup task once, for the tests of package
// nodepool_test that check what one pass does.
func (l *Launcher) CleanupPass(ctx context.Context) { l.impl.CleanupPass(ctx) }
