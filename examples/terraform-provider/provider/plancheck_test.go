package provider_test

import (
	"context"
	"fmt"

	"github.com/hashicorp/terraform-plugin-testing/plancheck"
)

// objectsCheck is a plan check on shipkit_release's objects: the map in the prior
// state (refreshed) and in the plan.
type objectsCheck struct {
	address string
	check   func(before, after map[string]string) error
}

// expectObjects checks the planned change of a release's objects.
func expectObjects(address string, check func(before, after map[string]string) error) plancheck.PlanCheck {
	return objectsCheck{address: address, check: check}
}

// CheckPlan finds the resource's change and runs the check on its objects.
func (c objectsCheck) CheckPlan(_ context.Context, req plancheck.CheckPlanRequest, resp *plancheck.CheckPlanResponse) {
	for _, rc := range req.Plan.ResourceChanges {
		if rc.Address != c.address || rc.Change == nil {
			continue
		}
		before, err := objectsOf(rc.Change.Before)
		if err == nil {
			var after map[string]string
			if after, err = objectsOf(rc.Change.After); err == nil {
				err = c.check(before, after)
			}
		}
		if err != nil {
			resp.Error = fmt.Errorf("%s: objects: %w", c.address, err)
		}
		return
	}
	resp.Error = fmt.Errorf("%s: not in the plan", c.address)
}

// objectsOf reads the objects attribute of a planned value (nil for none).
func objectsOf(v any) (map[string]string, error) {
	m, _ := v.(map[string]any)
	raw, ok := m["objects"].(map[string]any)
	if !ok {
		return nil, fmt.Errorf("objects are not known in the plan (%T)", m["objects"])
	}
	out := make(map[string]string, len(raw))
	for k, v := range raw {
		out[k], _ = v.(string)
	}
	return out, nil
}
