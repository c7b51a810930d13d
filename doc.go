// Package olimage documents how the repository's packages map to the data
// flow of shared/DESIGN.md; it holds no code.
//
//	fleet YAML  --roles-->     roles.Fleet, roles.Role, roles.Overlay (paths matched by glob)
//	overlays    --overlays-->  layers of tree.Entry, merged into a tree.Tree
//	tree        --manifest-->  the JSON schema of plans and image manifests
//	image data  --verity-->    the dm-verity hash tree and root hash veritysetup reads
//	image file  --qcow2-->     the qcow2 container a volume can be built into and read from
//	image       --artifact-->  an OCI artifact in a registry, and back to a file or a VM's disk
//	volume on a VM --activate--> activate: /opt and /etc linked from /1, journaled, reversible
//	cmd/olimage                cobra commands; each parses flags and calls the above
package olimage
