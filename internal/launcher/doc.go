// Package launcher is the machinery behind nodepool.Launcher: pool workers
// that pick requests from the queue, request handlers that fill node sets,
// the provider loop that advances create and delete machines, the cleanup
// tasks, min-ready and the statistics. The public surface is package
// nodepool; this package is internal so it can change shape freely.
package launcher
