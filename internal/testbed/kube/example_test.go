package kube_test

import (
	"context"
	"fmt"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/shipkit/shipkit/internal/testbed/kube"
)

// Tests share one cluster through testbed.Lazy (see the package documentation); a
// program can also start and stop one itself.
func ExampleStart() {
	c, stop, err := kube.Start()
	if err != nil {
		fmt.Println(err) // wraps testbed.ErrMissing when the binaries are not installed
		return
	}
	defer stop()

	nodes, err := c.Clientset().CoreV1().Nodes().List(context.Background(), metav1.ListOptions{})
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(len(nodes.Items), "fake nodes; kubeconfig", c.Kubeconfig, "context", c.Context)
}
