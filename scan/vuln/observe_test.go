package vuln_test

import (
	"context"
	"path/filepath"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/shipkit/shipkit/observe"
	"github.com/shipkit/shipkit/scan/vuln"
)

// recorder keeps the events it observes; scans may report concurrently.
type recorder struct {
	mu     sync.Mutex
	events []observe.Event
}

func (r *recorder) Observe(e observe.Event) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.events = append(r.events, e)
}

// steps returns "phase step" for each event.
func (r *recorder) steps() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for _, e := range r.events {
		out = append(out, e.Phase.String()+" "+e.Step)
	}
	return out
}

func TestObserverEvents(t *testing.T) {
	db := writeDB(t)
	rec := &recorder{}
	s := open(t, db.RootDir, vuln.WithObserver(rec))
	sb := fakeSBOM("v0.3.6", true)
	r, err := s.Scan(context.Background(), sb)
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err = s.Scan(ctx, sb)
	require.Error(t, err)

	scanStep := "scan " + sb.Subject.String()
	assert.Equal(t, []string{
		"started load vulnerability database", "finished load vulnerability database",
		"started " + scanStep, "finished " + scanStep,
		"started " + scanStep, "failed " + scanStep,
	}, rec.steps())
	for _, e := range rec.events {
		assert.Equal(t, "scan", e.Stage)
		assert.False(t, e.Time.IsZero())
	}
	assert.Contains(t, rec.events[1].Message, s.Status().Schema)
	assert.Equal(t, "3 findings", rec.events[3].Message, "findings: %v", ids(r))
	assert.ErrorIs(t, rec.events[5].Err, context.Canceled)
}

func TestObserverOpenFails(t *testing.T) {
	rec := &recorder{}
	_, err := vuln.Open(context.Background(), filepath.Join(t.TempDir(), "missing"), vuln.WithObserver(rec))
	require.Error(t, err)
	assert.Equal(t, []string{"started load vulnerability database", "failed load vulnerability database"}, rec.steps())
	assert.Equal(t, err, rec.events[1].Err)
}
