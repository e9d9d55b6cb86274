// Command imago builds, boots, updates, verifies and resets image-based,
// immutable Linux operating systems.
package main

import (
	"os"

	"github.com/imago-os/imago/internal/cli"
)

func main() {
	os.Exit(cli.Main(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}
