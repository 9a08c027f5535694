package zkclient

// OneShot makes a cache watch each child with one-shot watches, as it does
// against a ZooKeeper older than 3.6.
func OneShot[T any](t *TreeCache[T]) *TreeCache[T] {
	t.oneShot = true
	return t
}

// HasPersistentWatch reports whether the cache holds a persistent watch.
func HasPersistentWatch[T any](t *TreeCache[T]) bool { return t.persistent.Load() }
