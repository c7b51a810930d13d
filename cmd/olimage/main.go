// Command olimage builds, reads and compares the data-volume images of a
// fleet of VMs. See README.md, or run olimage help.
package main

import "os"

func main() {
	os.Exit(Main(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}
