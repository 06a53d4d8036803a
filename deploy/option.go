package deploy

import "github.com/shipkit/shipkit/internal/option"

// ErrInvalidOption is matched (errors.Is) by the error of a constructor of the
// deploy packages (deploy/apply's New, deploy/rollout's NewCanary and NewBlueGreen,
// deploy/fleet's Apply and Plan) given an option with a value it cannot use, such
// as a poll interval of zero or a negative concurrency. The error names the option
// and the value; nothing is contacted before it is returned.
//
// It is the same sentinel as mesh.ErrInvalidOption and cosign.ErrInvalidOption:
// one value for every stage, so errors.Is with any of them matches an invalid
// option of any stage.
var ErrInvalidOption = option.ErrInvalid
