package vuln

import (
	"errors"
	"testing"

	"github.com/stretchr/testify/assert"
)

func TestCheckSchema(t *testing.T) {
	tests := []struct {
		schema string
		ok     bool
	}{
		{"v6.1.10", true},
		{"v6.1.99", true}, // additions are backwards compatible
		{"v6.0.2", true},
		{"v6.2.0", false}, // a newer revision may not be readable
		{"v5.0.2", false},
		{"v7.0.0", false},
		{"", false},
		{"v6.1", false},
		{"v6.x.1", false},
	}
	for _, tt := range tests {
		t.Run(tt.schema, func(t *testing.T) {
			err := checkSchema(tt.schema)
			if tt.ok {
				assert.NoError(t, err)
				return
			}
			assert.True(t, errors.Is(err, ErrSchema), "%v", err)
		})
	}
}
