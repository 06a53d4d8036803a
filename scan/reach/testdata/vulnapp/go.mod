module example.com/vulnapp

go 1.24

require (
	github.com/go-chi/chi/v5 v5.2.3
	github.com/lib/pq v1.10.3
	golang.org/x/crypto v0.36.0
	golang.org/x/net v0.38.0
	golang.org/x/oauth2 v0.16.0
	golang.org/x/sys v0.31.0
	golang.org/x/text v0.23.0
)
