// Command probe checks what a static binary needs from its base image: the system
// pool of CA certificates and the time zone database.
package main

import (
	"crypto/x509"
	"fmt"
	"os"
	"time"
)

func main() {
	pool, err := x509.SystemCertPool()
	if err != nil {
		fmt.Println("cert pool:", err)
		os.Exit(1)
	}
	loc, err := time.LoadLocation("Asia/Tokyo")
	if err != nil {
		fmt.Println("time zone:", err)
		os.Exit(1)
	}
	_, offset := time.Date(2024, 1, 1, 0, 0, 0, 0, loc).Zone()
	fmt.Printf("roots=%d tokyo=%d\n", len(pool.Subjects()), offset) //nolint:staticcheck // Subjects counts a pool read from files
}
