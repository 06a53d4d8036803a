// Package tofu only anchors the tool directive of this nested module: the OpenTofu
// command, built by install.sh for the Terraform provider example's acceptance tests.
package tofu
