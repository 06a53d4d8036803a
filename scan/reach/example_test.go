package reach_test

import (
	"context"
	"fmt"
	"os"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/shipkit/shipkit/scan/reach"
	"github.com/shipkit/shipkit/scan/report"
	"github.com/shipkit/shipkit/scan/suppress"
	"github.com/shipkit/shipkit/scan/vulndb"
)

// The OSV feed that the grype database was written from also becomes govulncheck's
// database; the Go findings whose vulnerable symbols are in no binary of the image
// get a not_affected statement, and suppress.Apply moves them out of the report.
func Example() {
	ctx := context.Background()
	var (
		img v1.Image       // the image the report is about
		rep *report.Report // from scan/vuln, with a database written from records
	)
	f, err := os.Open("golang-vulndb.jsonl")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer f.Close()
	records, err := vulndb.FromOSV(f)
	if err != nil {
		fmt.Println(err)
		return
	}
	godb, err := vulndb.WriteGo(ctx, "govulndb", records)
	if err != nil {
		fmt.Println(err)
		return
	}
	a, err := reach.New(godb.Dir)
	if err != nil {
		fmt.Println(err)
		return
	}
	res, err := a.VEX(ctx, rep, img)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Printf("%d Go findings not in the binary, %d present\n", res.Count(reach.NotInBinary), res.Count(reach.Present))
	rep = suppress.Apply(rep, time.Now(), res.VEX)
	fmt.Println(len(rep.Findings), "findings left")
	doc, _ := reach.OpenVEX(res.VEX) // to attest or hand to grype --vex
	_ = doc
}
