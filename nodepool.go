// Package nodepool launches and manages single-use test nodes for CI
// systems, coordinated through ZooKeeper with the exact protocol of Zuul's
// Nodepool. It holds the launcher (request handling and the node
// lifecycle) and the configuration, and re-exports the wire model of
// package zkclient (Node, NodeRequest, ...).
//
// A Launcher is the library form of the nodepool-launcher daemon: load a
// Config with LoadConfig, create the launcher with NewLauncher and its
// options (WithZooKeeper to share a connection, WithDriver to add a
// driver that is not registered with driver.Register, WithLogger, ...),
// and call Run until its context ends. Requests reach it through
// ZooKeeper, written by Zuul or by any client of package zkclient. The
// drivers that talk to clouds implement package driver; see
// docs/embedding.md and docs/writing-a-driver.md in the repository.
package nodepool

import "github.com/nodepool-go/nodepool/zkclient"

// Re-exported wire model; see package zkclient for the encoding.
type (
	// Node is a node record (/nodepool/nodes/<id>).
	Node = zkclient.Node
	// NodeState is a node's state.
	NodeState = zkclient.NodeState
	// NodeRequest is a node request (/nodepool/requests/<id>).
	NodeRequest = zkclient.NodeRequest
	// RequestState is a request's state.
	RequestState = zkclient.RequestState
	// ImageBuild is a diskimage build record.
	ImageBuild = zkclient.ImageBuild
	// ImageUpload is a record of a build uploaded to a provider.
	ImageUpload = zkclient.ImageUpload
	// Component is a component registration.
	Component = zkclient.Component
)

// Version is this release, written into component registrations.
const Version = "0.1.0"
