// Package nodepool launches and manages single-use test nodes for CI
// systems, coordinated through ZooKeeper with the exact protocol of Zuul's
// Nodepool. This package is the public surface: the Launcher and its
// options, placement of requests, and configuration loading.
//
// A Launcher is the library form of the nodepool-launcher daemon: load a
// Config with LoadConfig, create the launcher with NewLauncher and its
// options (WithZooKeeper to share a connection, WithDrivers or WithDriver
// to bring drivers, WithLogger, ...), and call Run until its context ends.
// Requests reach it through ZooKeeper, written by Zuul or by any client of
// package zkclient.
//
// The wire model (node records, node requests, image builds and uploads,
// component registrations) is package zkclient's: zkclient.Node,
// zkclient.NodeRequest and the others are the one name of each type.
//
// This package links no cloud driver. Providers name drivers looked up in
// a driver.Registry: driver.Default unless WithDrivers (and, for
// LoadConfig, config.WithRegistry) gives another. Import
// github.com/nodepool-go/nodepool/driver/stock for the drivers that ship
// with nodepool. The drivers implement package driver; see
// docs/embedding.md and docs/writing-a-driver.md in the repository.
package nodepool

import "github.com/nodepool-go/nodepool/internal/version"

// Version is this release, written into component registrations.
const Version = version.Version
