package mesh_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/shipkit/shipkit/mesh"
)

func TestValidateWeight(t *testing.T) {
	for _, w := range []int32{0, 1, 50, 100} {
		assert.NoError(t, mesh.ValidateWeight(w), w)
	}
	for _, w := range []int32{-1, 101, 1000} {
		assert.ErrorContains(t, mesh.ValidateWeight(w), "outside 0-100", w)
	}
}

func TestValidateHeader(t *testing.T) {
	for _, tc := range []struct {
		name, value, want string
	}{
		{"X-Canary", "always", ""},
		{"x-user_group~1", "beta testers; v=2", ""},
		{"", "v", "header name is empty"},
		{"X Canary", "v", `character ' ' is not allowed`},
		{"X-Canary:", "v", `character ':' is not allowed`},
		{"X-Canary", "", "value is empty"},
		{"X-Canary", "a\nb", "control character 0xa"},
		{strings.Repeat("x", 257), "v", "longer than 256"},
		{"X-Canary", strings.Repeat("v", mesh.MaxHeaderValueLength+1), "longer than 4096"},
	} {
		err := mesh.ValidateHeader(tc.name, tc.value)
		if tc.want == "" {
			assert.NoError(t, err, tc.name)
		} else {
			assert.ErrorContains(t, err, tc.want, tc.name)
		}
	}
}

func TestPrerequisiteError(t *testing.T) {
	cause := errors.New("connection refused")
	err := error(&mesh.PrerequisiteError{Object: "HTTPRoute shop/web", Problem: "not found", Err: cause})
	assert.ErrorIs(t, err, mesh.ErrPrerequisite)
	assert.ErrorIs(t, err, cause)
	assert.EqualError(t, err, "HTTPRoute shop/web: not found: connection refused")
	assert.EqualError(t, &mesh.PrerequisiteError{Object: "Service shop/web", Problem: "not found"}, "Service shop/web: not found")
	assert.NotErrorIs(t, cause, mesh.ErrPrerequisite)
}
