package main

import (
	"context"
	"errors"
	"io"
)

// chainCmd is written by the main-job issue's work; until then the scenario says so.
func chainCmd(ctx context.Context, args []string, out io.Writer) error {
	return errors.New("the chain scenario is not written yet")
}
