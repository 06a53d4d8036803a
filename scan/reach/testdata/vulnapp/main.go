// Command vulnapp links old versions of several modules with known advisories
// (golang.org/x/crypto, x/net, x/text, x/sys, x/oauth2, chi, lib/pq) and calls a
// little of each, so that govulncheck finds some advisories at symbol level and
// most only at module or package level. scan/reach's tests build it.
package main

import (
	"database/sql"
	"fmt"
	"net/http"
	"os"
	"strings"

	"github.com/go-chi/chi/v5"
	_ "github.com/lib/pq"
	"golang.org/x/crypto/bcrypt"
	"golang.org/x/net/html"
	"golang.org/x/oauth2"
	"golang.org/x/sys/unix"
	"golang.org/x/text/language"
)

func main() {
	r := chi.NewRouter()
	r.Get("/", func(w http.ResponseWriter, _ *http.Request) { fmt.Fprintln(w, "ok") })
	doc, err := html.Parse(strings.NewReader("<p>hello</p>"))
	fmt.Println(doc != nil, err)
	tag, err := language.Parse("en-US")
	fmt.Println(tag, err)
	h, err := bcrypt.GenerateFromPassword([]byte("pw"), bcrypt.MinCost)
	fmt.Println(len(h), err)
	cfg := oauth2.Config{ClientID: "x"}
	fmt.Println(cfg.AuthCodeURL("state"))
	fmt.Println(unix.Getpid() == os.Getpid())
	if db, err := sql.Open("postgres", "host=/nonexistent"); err == nil {
		_ = db.Close()
	}
	if len(os.Args) > 1 {
		_ = http.ListenAndServe(os.Args[1], r)
	}
}
