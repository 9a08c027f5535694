// Package ensembletest runs launchers against a three-server ZooKeeper
// ensemble (started with scripts/zookeeper.sh ensemble) while servers
// fail: the leader, a follower, quorum itself, and a rolling restart. Its
// only content is that test; see ensemble_test.go.
package ensembletest
