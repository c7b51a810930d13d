package manifest

// SecretPath is a file a role's services need that holds a secret: it is
// never in the image. The VM supplies it on the root disk, and activation
// refuses to go ahead until it is there with this owner and mode. Its
// path is one tree.CheckSecretPath accepts.
type SecretPath struct {
	Path  string `json:"path"` // on the root file system, relative to /: etc/openlibrary/secrets.yml
	Owner string `json:"owner,omitempty"`
	Group string `json:"group,omitempty"`
	UID   uint32 `json:"uid"`
	GID   uint32 `json:"gid"`
	Mode  string `json:"mode"` // octal, four digits
}
