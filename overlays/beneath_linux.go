package overlays

import "golang.org/x/sys/unix"

// openBeneath opens rel below the directory dirfd, following no symlink
// and never leaving it.
func openBeneath(dirfd int, rel string, flags int) (int, error) {
	return unix.Openat2(dirfd, rel, &unix.OpenHow{
		Flags:   uint64(flags),
		Resolve: unix.RESOLVE_BENEATH | unix.RESOLVE_NO_SYMLINKS | unix.RESOLVE_NO_MAGICLINKS,
	})
}
