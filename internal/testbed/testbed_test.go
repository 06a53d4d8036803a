package testbed_test

import (
	"errors"
	"fmt"
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/shipkit/shipkit/internal/testbed"
)

// recorder is a testing.TB that records how Check ended the test.
type recorder struct {
	testing.TB
	skipped, failed string
}

func (r *recorder) Helper()                           {}
func (r *recorder) Skipf(format string, args ...any)  { r.skipped = fmt.Sprintf(format, args...) }
func (r *recorder) Fatalf(format string, args ...any) { r.failed = fmt.Sprintf(format, args...) }

func TestCheck(t *testing.T) {
	missing := testbed.Missingf("prometheus not found")
	broken := errors.New("kube-apiserver exited")
	tests := []struct {
		name, ci       string
		err            error
		skip, fail     bool
		messageContain string
	}{
		{"nil", "true", nil, false, false, ""},
		{"missing locally skips", "", missing, true, false, "hack/testbed.sh"},
		{"missing in CI fails", "true", missing, false, true, "prometheus not found"},
		{"missing with CI=1 fails", "1", missing, false, true, "prometheus not found"},
		{"broken locally fails", "", broken, false, true, "kube-apiserver exited"},
		{"broken in CI fails", "true", broken, false, true, "kube-apiserver exited"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv("CI", tt.ci)
			r := &recorder{TB: t}
			testbed.Check(r, tt.err)
			assert.Equal(t, tt.skip, r.skipped != "", "skipped: %q", r.skipped)
			assert.Equal(t, tt.fail, r.failed != "", "failed: %q", r.failed)
			assert.Contains(t, r.skipped+r.failed, tt.messageContain)
		})
	}
}
