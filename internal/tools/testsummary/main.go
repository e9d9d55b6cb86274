// Command testsummary reads `go test -json` output on stdin and prints a
// summary: the output of every failed test, the skipped tests with their
// reasons, and per-package and total counts. It exits 1 when anything failed.
package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
)

type event struct {
	Action  string
	Package string
	Test    string
	Output  string
	Elapsed float64
}

type counts struct{ pass, fail, skip int }

func main() {
	os.Exit(summarize(os.Stdin, os.Stdout))
}

func summarize(in io.Reader, out io.Writer) int {
	outputs := map[string]*strings.Builder{}
	perPkg := map[string]*counts{}
	pkgElapsed := map[string]float64{}
	var failed, skipped []string
	var failedPkgs []string
	sc := bufio.NewScanner(in)
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	for sc.Scan() {
		var ev event
		if json.Unmarshal(sc.Bytes(), &ev) != nil {
			fmt.Fprintln(out, sc.Text()) // build errors arrive as plain text
			continue
		}
		key := ev.Package + " " + ev.Test
		c := perPkg[ev.Package]
		if c == nil {
			c = &counts{}
			perPkg[ev.Package] = c
		}
		switch ev.Action {
		case "output":
			b := outputs[key]
			if b == nil {
				b = &strings.Builder{}
				outputs[key] = b
			}
			b.WriteString(ev.Output)
		case "pass", "fail", "skip":
			if ev.Test == "" {
				pkgElapsed[ev.Package] = ev.Elapsed
				if ev.Action == "fail" {
					failedPkgs = append(failedPkgs, ev.Package)
				}
				continue
			}
			switch ev.Action {
			case "pass":
				c.pass++
			case "fail":
				c.fail++
				failed = append(failed, key)
			case "skip":
				c.skip++
				skipped = append(skipped, key)
			}
		}
	}
	for _, k := range failed {
		fmt.Fprintf(out, "--- FAIL %s\n%s\n", k, outputs[k])
	}
	for _, p := range failedPkgs {
		if perPkg[p].fail == 0 { // failed without a failing test: build error, panic, timeout
			fmt.Fprintf(out, "--- FAIL package %s\n%s\n", p, outputs[p+" "])
		}
	}
	if len(skipped) > 0 {
		fmt.Fprintln(out, "Skipped:")
		for _, k := range skipped {
			reason := strings.TrimSpace(lastLine(outputs[k]))
			fmt.Fprintf(out, "  %s: %s\n", k, reason)
		}
	}
	pkgs := make([]string, 0, len(perPkg))
	for p := range perPkg {
		pkgs = append(pkgs, p)
	}
	sort.Strings(pkgs)
	var total counts
	fmt.Fprintln(out, "Summary:")
	for _, p := range pkgs {
		c := perPkg[p]
		total.pass += c.pass
		total.fail += c.fail
		total.skip += c.skip
		if c.pass+c.fail+c.skip == 0 {
			continue
		}
		fmt.Fprintf(out, "  %-60s pass %4d  fail %3d  skip %3d  %6.1fs\n", p, c.pass, c.fail, c.skip, pkgElapsed[p])
	}
	fmt.Fprintf(out, "TOTAL: %d passed, %d failed, %d skipped, %d packages failed\n",
		total.pass, total.fail, total.skip, len(failedPkgs))
	if total.fail > 0 || len(failedPkgs) > 0 {
		return 1
	}
	return 0
}

func lastLine(b *strings.Builder) string {
	if b == nil {
		return ""
	}
	lines := strings.Split(strings.TrimRight(b.String(), "\n"), "\n")
	for i := len(lines) - 1; i >= 0; i-- {
		if l := strings.TrimSpace(lines[i]); l != "" && !strings.HasPrefix(l, "--- SKIP") {
			return l
		}
	}
	return ""
}
