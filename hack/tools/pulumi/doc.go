// Package pulumi only anchors the tool directives of this nested module: the Pulumi
// CLI and the Pulumi YAML language host, built by install.sh for the Pulumi provider
// example's tests.
package pulumi
