package deploy

import "errors"

// ErrInvalidOption is matched (errors.Is) by the error of a constructor of the
// deploy packages (deploy/apply's New, deploy/rollout's NewCanary and NewBlueGreen)
// given an option with a value it cannot use, such as a poll interval of zero or a
// negative concurrency. The error names the option and the value; nothing is
// contacted before it is returned.
var ErrInvalidOption = errors.New("invalid option")
