package main

import (
	"context"
	"errors"
	"io"
)

// scanCmd is written by the scan stage's work; until then the scenario says so.
func scanCmd(ctx context.Context, args []string, out io.Writer) error {
	return errors.New("the scan scenario is not written yet")
}
