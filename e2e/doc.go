// Package e2e holds the VM tests (make e2e): a busybox VM and a Debian
// systemd VM under qemu activate images olimage built, through boots,
// releases and a rollback. It has no code outside its tests.
package e2e
