package main

import (
	"context"
	"errors"
	"io"
)

// deployCmd is written by the deploy stage's work; until then the scenario says so.
func deployCmd(ctx context.Context, args []string, out io.Writer) error {
	return errors.New("the deploy scenario is not written yet")
}
