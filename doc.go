// Package olimage documents how the repository's packages map to the data
// flow of shared/DESIGN.md; it holds no code. Every package is on an arrow:
//
//	fleet YAML --roles--> roles.Fleet, roles.Role, roles.Overlay (paths matched by glob)
//	role --overlays--> layers of tree.Entry --merge--> tree.Tree (provenance per entry) and tree.Input per overlay
//	tree --policy--> content-policy findings (secrets, forbidden paths, modes, sizes)
//	tree --manifest--> the JSON form of a tree: plans, image manifests, sidecars
//	tree --builder--> ext4 layout (ext4, on-disk types in ext4/format)
//	     --> block stream --> sink: .img | .img.zst | .gpt.img | .qcow2 (qcow2) | stdout,
//	         with a dm-verity tree appended (verity) and the sidecar beside it
//	sidecar --sshsig--> an SSH signature ssh-keygen -Y verify checks
//	image file --image--> one random-access file system (raw, zstd, gzip, GPT, qcow2)
//	           --ext4/reader--> tree.Tree and structural checks
//	image | manifest | role --operand--> tree.Tree for the read commands:
//	           diff (tree vs tree; diff.Compare chooses what of two operands
//	           to read: manifests, differing manifest chunks, listings or hashes,
//	           and has a diff.Opener, operand.DiffOpener, open them),
//	           verify (image vs its manifest and sidecar),
//	           extract (tree to a host directory), sbom (tree to CycloneDX)
//	image --artifact--> OCI registry --artifact--> a file or a VM's disk
//	volume at /1 on a VM --activate--> /opt and /etc linked from /1, units,
//	           state and accounts on the root disk, journaled and reversible
//	cmd/olimage: cobra commands; each parses flags, calls one of the above, prints
//
// The arrows run one way. The read side (ext4/reader, image, diff, verify,
// extract, activate, sbom) and the model both sides share (tree, manifest,
// glob) depend on nothing of the build side (roles, overlays, policy,
// builder, ext4) or the registry (artifact); operand, where the two meet
// for the commands, is above them both. roles, overlays and policy reach
// neither manifest nor the image: the paths both a role and a manifest
// name on the VM's root disk are checked in tree. TestLayers checks this.
//
// Support: internal/par (bounded worker pools), internal/quote (paths
// quoted for digests and output), internal/tarread (tar archives read as
// archive/tar reads them, the common headers faster; overlays' archives),
// internal/trace (what -v says, and the progress of long reads). For
// tests: internal/golden (golden files and -update), internal/testenv
// (root, tools, skips CI refuses), internal/testfs (test trees),
// internal/testimage (real images of a one-role fleet),
// internal/registrytest (a real registry), bench/gentree (benchmark
// trees), bench/gentar (benchmark archives), e2e (VM tests under qemu).
package olimage
