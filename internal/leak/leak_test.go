package leak

import (
	"testing"

	"github.com/stretchr/testify/require"
)

func TestTwoPassesConfirmALeak(t *testing.T) {
	var tr Tracker
	p := tr.Begin("cloud")
	require.False(t, p.Leaked("a"), "first sighting is only a candidate")
	p.End()

	p = tr.Begin("cloud")
	require.True(t, p.Leaked("a"), "second pass in a row confirms")
	require.False(t, p.Leaked("b"))
	p.End()

	p = tr.Begin("cloud")
	require.False(t, p.Leaked("c"))
	p.End() // a and b not seen this pass: forgotten

	p = tr.Begin("cloud")
	require.False(t, p.Leaked("a"), "a gap in sightings starts over")
	require.True(t, p.Leaked("c"))
	p.End()
}

func TestScopesAreIndependent(t *testing.T) {
	var tr Tracker
	p := tr.Begin("one")
	p.Leaked("x")
	p.End()
	q := tr.Begin("two")
	require.False(t, q.Leaked("x"), "a candidate of another scope")
	q.End()
	p = tr.Begin("one")
	require.True(t, p.Leaked("x"))
}

func TestUnendedPassLeavesThePreviousOne(t *testing.T) {
	var tr Tracker
	p := tr.Begin("s")
	p.Leaked("x")
	p.End()
	_ = tr.Begin("s") // abandoned, e.g. the listing failed
	p = tr.Begin("s")
	require.True(t, p.Leaked("x"))
}
