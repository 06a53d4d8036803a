// Package pulumi only anchors the tool directive of this nested module: the Pulumi
// CLI, built by install.sh (with Pulumi YAML's language host beside it) for the
// Pulumi provider example's tests.
package pulumi
