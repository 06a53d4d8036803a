// Command hello is the example service of shipkit's main job: a small HTTP server
// that greets in the language the client prefers and reports its health.
package main

import (
	"flag"
	"fmt"
	"log"
	"net/http"
	"os"
	"time"

	"golang.org/x/text/language"
)

var supported = language.NewMatcher([]language.Tag{language.English, language.German, language.French})

var greetings = map[string]string{"en": "Hello", "de": "Hallo", "fr": "Bonjour"}

func greet(w http.ResponseWriter, r *http.Request) {
	tags, _, _ := language.ParseAcceptLanguage(r.Header.Get("Accept-Language"))
	_, i, _ := supported.Match(tags...)
	base, _ := []language.Tag{language.English, language.German, language.French}[i].Base()
	fmt.Fprintf(w, "%s from %s\n", greetings[base.String()], version())
}

func version() string {
	if v := os.Getenv("VERSION"); v != "" {
		return v
	}
	return "dev"
}

func main() {
	addr := flag.String("addr", ":8080", "address to listen on")
	flag.Parse()
	mux := http.NewServeMux()
	mux.HandleFunc("/", greet)
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) { fmt.Fprintln(w, "ok") })
	srv := &http.Server{Addr: *addr, Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	log.Printf("hello %s listening on %s", version(), *addr)
	log.Fatal(srv.ListenAndServe())
}
