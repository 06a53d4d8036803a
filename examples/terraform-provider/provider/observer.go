package provider

import (
	"context"

	"github.com/hashicorp/terraform-plugin-log/tflog"

	"github.com/shipkit/shipkit/observe"
)

// logObserver sends shipkit's stage events to Terraform's log, so the provider is
// quiet on the terminal and tells everything with TF_LOG=debug. Progress events
// (bytes pushed) go to trace level, the rest to debug; failures are returned as
// diagnostics by the resources, so they are logged at debug level too.
type logObserver struct {
	ctx context.Context
}

var _ observe.Observer = logObserver{}

// Observe logs e.
func (o logObserver) Observe(e observe.Event) {
	fields := map[string]any{"stage": e.Stage, "step": e.Step, "phase": e.Phase.String()}
	if e.Message != "" {
		fields["message"] = e.Message
	}
	if e.Err != nil {
		fields["error"] = e.Err.Error()
	}
	if e.Phase == observe.Progress {
		fields["done"], fields["total"] = e.Done, e.Total
		tflog.Trace(o.ctx, "shipkit progress", fields)
		return
	}
	tflog.Debug(o.ctx, "shipkit "+e.Stage, fields)
}
