package sbom_test

import (
	"context"
	"fmt"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/shipkit/shipkit/observe"
	"github.com/shipkit/shipkit/scan/internal/testimage"
	"github.com/shipkit/shipkit/scan/sbom"
)

func TestObserverEvents(t *testing.T) {
	testimage.GoBinary(t)
	isolateTemp(t)
	var mu sync.Mutex
	var events []observe.Event
	obs := observe.ObserverFunc(func(e observe.Event) { mu.Lock(); events = append(events, e); mu.Unlock() })
	c := sbom.New(sbom.WithObserver(obs), sbom.WithConcurrency(1)) // events in order

	sboms, err := c.CatalogIndex(context.Background(), testimage.Index(t))
	require.NoError(t, err)
	require.Len(t, sboms, 2)
	_, err = c.Catalog(context.Background(), nil)
	require.Error(t, err)

	var got []string
	for _, e := range events {
		assert.Equal(t, "scan", e.Stage)
		got = append(got, e.Phase.String()+" "+e.Step)
	}
	assert.Equal(t, []string{
		"started catalog linux/amd64", "finished catalog linux/amd64",
		"started catalog linux/arm64", "finished catalog linux/arm64",
		"started catalog", "failed catalog",
	}, got)
	require.Len(t, events, 6)
	assert.Equal(t, sboms[0].Subject.String(), events[0].Message)
	assert.Equal(t, fmt.Sprintf("%d packages", sboms[1].Syft().Artifacts.Packages.PackageCount()), events[3].Message)
	assert.Equal(t, err, events[5].Err)
}
