// Package nodepool launches and manages single-use test nodes for CI
// systems, coordinated through ZooKeeper with the exact protocol of Zuul's
// Nodepool. It holds the launcher (request handling and the node
// lifecycle) and re-exports the wire model of package zkclient.
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
