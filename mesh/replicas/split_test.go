package replicas_test

import (
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/shipkit/shipkit/mesh/replicas"
)

func TestSplit(t *testing.T) {
	for _, tc := range []struct {
		total, weight, stable, canary int32
	}{
		{10, 0, 10, 0},
		{10, 10, 9, 1},
		{10, 50, 5, 5},
		{10, 100, 0, 10},
		{4, 10, 4, 0}, // one replica would be 25%
		{4, 25, 3, 1},
		{3, 50, 2, 1},
		{3, 67, 1, 2},
		{1, 99, 1, 0},
		{1, 100, 0, 1},
		{0, 50, 0, 0},
	} {
		s, c := replicas.Split(tc.total, tc.weight)
		assert.Equal(t, [2]int32{tc.stable, tc.canary}, [2]int32{s, c}, "Split(%d, %d)", tc.total, tc.weight)
	}
}

// The canary's share never exceeds the weight, is the largest that does, and the
// total stays fixed.
func TestSplitNeverExceedsWeight(t *testing.T) {
	for total := int32(1); total <= 64; total++ {
		for w := int32(0); w <= 100; w++ {
			s, c := replicas.Split(total, w)
			assert.Equal(t, total, s+c)
			assert.LessOrEqual(t, c*100, w*total, "Split(%d, %d) gives the canary %d", total, w, c)
			assert.Greater(t, (c+1)*100, w*total, "Split(%d, %d) gives the canary %d, fewer than it may have", total, w, c)
		}
		_, c := replicas.Split(total, 100)
		assert.Equal(t, total, c)
	}
}
