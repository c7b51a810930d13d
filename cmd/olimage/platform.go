package main

import (
	"fmt"
	"runtime"
)

// needLinux refuses, on any other system, a command that changes a VM's
// root file system: its mounts, units, accounts and /etc links are
// Linux's. The read side (inspect, ls, cat, extract, diff) runs anywhere.
func needLinux(command string) error {
	if runtime.GOOS == "linux" {
		return nil
	}
	return hintError{
		fmt.Errorf("%s: acts on a Linux VM's root file system, and this is %s", command, runtime.GOOS),
		"run it on the VM; here, inspect, ls, cat, extract and diff read images",
	}
}
