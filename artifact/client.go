package artifact

import (
	"fmt"
	"net"
	"strings"

	"oras.land/oras-go/v2/registry"
	"oras.land/oras-go/v2/registry/remote"
	"oras.land/oras-go/v2/registry/remote/auth"
	"oras.land/oras-go/v2/registry/remote/credentials"
	"oras.land/oras-go/v2/registry/remote/retry"
)

// Client opens repositories with the user's docker credentials.
type Client struct {
	// Insecure talks plain HTTP, which only a registry on this machine
	// (localhost, 127.0.0.0/8, ::1) may be reached with.
	Insecure bool
	// UserAgent names the client to the registry.
	UserAgent string
}

// IsRef reports whether name reads as a registry reference with a
// registry host (host.domain/repo:tag, host:port/repo@sha256:...,
// localhost/repo:tag) rather than a file path or role name.
func IsRef(name string) bool {
	ref, err := registry.ParseReference(name)
	if err != nil || ref.Reference == "" {
		return false
	}
	h := ref.Registry
	return strings.ContainsAny(h, ".:") || h == "localhost" || strings.HasPrefix(h, "[")
}

// repository opens the repository of ref; ref must name a tag or digest.
func (c *Client) repository(ref string) (*remote.Repository, registry.Reference, error) {
	r, err := registry.ParseReference(ref)
	if err != nil {
		return nil, r, fmt.Errorf("%s: %w", ref, err)
	}
	repo, err := remote.NewRepository(r.Registry + "/" + r.Repository)
	if err != nil {
		return nil, r, fmt.Errorf("%s: %w", ref, err)
	}
	if c.Insecure {
		if !isLocal(r.Host()) {
			return nil, r, fmt.Errorf("%s: --insecure: %w, not %s", ref, ErrInsecure, r.Host())
		}
		repo.PlainHTTP = true
	}
	// Credentials come from docker's config.json ($DOCKER_CONFIG or
	// ~/.docker) and the credential helpers it names; the auth client
	// answers both basic and token challenges, and the retry transport
	// backs off on 5xx, 429 and connection resets.
	store, err := credentials.NewStoreFromDocker(credentials.StoreOptions{})
	if err != nil {
		return nil, r, fmt.Errorf("docker credentials: %w", err)
	}
	cl := &auth.Client{
		Client:     retry.DefaultClient,
		Cache:      auth.NewCache(),
		Credential: credentials.Credential(store),
	}
	if c.UserAgent != "" {
		cl.SetUserAgent(c.UserAgent)
	}
	repo.Client = cl
	return repo, r, nil
}

func isLocal(hostport string) bool {
	host := hostport
	if h, _, err := net.SplitHostPort(hostport); err == nil {
		host = h
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(strings.Trim(host, "[]"))
	return ip != nil && ip.IsLoopback()
}
