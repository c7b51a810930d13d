// Package registrytest runs a real OCI registry (Debian's docker-registry,
// the CNCF distribution) on 127.0.0.1 for tests, with optional basic auth,
// and a proxy in front of it that injects faults. It does not mock the
// registry protocol.
package registrytest

import (
	"context"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/internetarchive/olimage/internal/testenv"
)

// Binary is the registry program the tests run.
const Binary = "/usr/bin/docker-registry"

// Need skips t, or fails it when OLIMAGE_TEST_DISALLOW_SKIP is set, unless
// every named program is installed.
func Need(t testing.TB, programs ...string) {
	t.Helper()
	for _, p := range programs {
		testenv.Tool(t, p)
	}
}

// Options configure a registry.
type Options struct {
	// User and Password, when set, turn on basic auth with an htpasswd
	// file made by htpasswd(1).
	User, Password string
}

// Registry is a running registry.
type Registry struct {
	// Host is host:port, for references: Host + "/ol-web:2024.01".
	Host string
	dir  string
	t    testing.TB
	cmd  *exec.Cmd
	done chan struct{}
	logs *strings.Builder
}

// Start runs a registry with its storage in a temporary directory and
// stops it when the test ends.
func Start(t testing.TB, opts Options) *Registry {
	t.Helper()
	Need(t, Binary)
	dir := t.TempDir()
	auth := ""
	if opts.User != "" {
		Need(t, "htpasswd")
		pw := filepath.Join(dir, "htpasswd")
		out, err := exec.Command("htpasswd", "-Bbc", pw, opts.User, opts.Password).CombinedOutput()
		if err != nil {
			t.Fatalf("htpasswd: %v\n%s", err, out)
		}
		auth = fmt.Sprintf("auth:\n  htpasswd:\n    realm: olimage-test\n    path: %s\n", pw)
	}
	r := &Registry{Host: freeAddr(t), dir: dir, t: t}
	cfg := fmt.Sprintf(`version: 0.1
log:
  level: error
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: %s
  delete:
    enabled: true
http:
  addr: %s
%s`, filepath.Join(dir, "data"), r.Host, auth)
	if err := os.WriteFile(filepath.Join(dir, "config.yml"), []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	r.Start()
	t.Cleanup(r.Stop)
	return r
}

// freeAddr finds a free port on 127.0.0.1.
func freeAddr(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// Start (re)starts a stopped registry on the same address and storage.
func (r *Registry) Start() {
	r.t.Helper()
	if r.cmd != nil {
		return
	}
	r.logs = &strings.Builder{}
	cmd := exec.Command(Binary, "serve", filepath.Join(r.dir, "config.yml"))
	cmd.Stdout, cmd.Stderr = &lockedWriter{w: r.logs}, &lockedWriter{w: r.logs}
	if err := cmd.Start(); err != nil {
		r.t.Fatalf("starting %s: %v", Binary, err)
	}
	r.cmd, r.done = cmd, make(chan struct{})
	go func() { cmd.Wait(); close(r.done) }()
	// Ready when /v2/ answers at all: 200, or 401 with auth on.
	for i := 0; ; i++ {
		resp, err := http.Get("http://" + r.Host + "/v2/")
		if err == nil {
			resp.Body.Close()
			return
		}
		select {
		case <-r.done:
			r.t.Fatalf("%s exited at start: %s", Binary, r.logs)
		case <-time.After(50 * time.Millisecond):
		}
		if i > 400 {
			r.Stop()
			r.t.Fatalf("%s did not answer on %s within 20s: %s", Binary, r.Host, r.logs)
		}
	}
}

// Stop kills the registry; Start brings it back.
func (r *Registry) Stop() {
	if r.cmd == nil {
		return
	}
	r.cmd.Process.Kill()
	<-r.done
	r.cmd = nil
}

type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// Fault decides what the proxy does with one request: nil passes it
// through unchanged.
type Fault func(req *http.Request) *Action

// Action is a fault to inject.
type Action struct {
	// Status, when not 0, is answered instead of forwarding.
	Status int
	// CutAfter, when > 0, forwards the request but closes the connection
	// after this many bytes of the response body.
	CutAfter int64
	// Corrupt flips a byte of the response body.
	Corrupt bool
}

// Proxy forwards to a registry and injects the faults its Fault returns.
type Proxy struct {
	Host string
	mu   sync.Mutex
	f    Fault
	srv  *http.Server
	user string // with RequireToken: the basic credentials /token takes
	pass string
}

// token is the bearer token the proxy's /token endpoint hands out.
const token = "registrytest-token"

// RequireToken makes the proxy demand bearer-token auth the way Docker
// Hub and GHCR do: a 401 with a Bearer challenge naming its /token
// endpoint, which gives a token for user and pass in basic auth.
func (p *Proxy) RequireToken(user, pass string) {
	p.mu.Lock()
	p.user, p.pass = user, pass
	p.mu.Unlock()
}

// auth answers the token protocol; it reports whether the request may go on.
func (p *Proxy) auth(w http.ResponseWriter, req *http.Request) bool {
	p.mu.Lock()
	user, pass := p.user, p.pass
	p.mu.Unlock()
	if user == "" {
		return true
	}
	if req.URL.Path == "/token" {
		if u, pw, ok := req.BasicAuth(); !ok || u != user || pw != pass {
			http.Error(w, `{"errors":[{"code":"UNAUTHORIZED"}]}`, http.StatusUnauthorized)
			return false
		}
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"token": %q, "access_token": %q}`, token, token)
		return false
	}
	if req.Header.Get("Authorization") != "Bearer "+token {
		w.Header().Set("WWW-Authenticate", fmt.Sprintf(`Bearer realm="http://%s/token",service="registrytest"`, p.Host))
		http.Error(w, `{"errors":[{"code":"UNAUTHORIZED"}]}`, http.StatusUnauthorized)
		return false
	}
	req.Header.Del("Authorization")
	return true
}

// SetFault replaces the fault function; nil passes everything.
func (p *Proxy) SetFault(f Fault) {
	p.mu.Lock()
	p.f = f
	p.mu.Unlock()
}

// NewProxy starts a proxy in front of r, closed when the test ends.
func NewProxy(t testing.TB, r *Registry) *Proxy {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	target, _ := url.Parse("http://" + r.Host)
	rp := httputil.NewSingleHostReverseProxy(target)
	rp.ErrorLog = log.New(io.Discard, "", 0) // aborted requests are the point
	p := &Proxy{Host: l.Addr().String()}
	// Location headers name the registry; a client must keep talking to
	// the proxy.
	rp.ModifyResponse = func(resp *http.Response) error {
		if loc := resp.Header.Get("Location"); loc != "" {
			resp.Header.Set("Location", strings.Replace(loc, r.Host, p.Host, 1))
		}
		return nil
	}
	p.srv = &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if !p.auth(w, req) {
			return
		}
		p.mu.Lock()
		f := p.f
		p.mu.Unlock()
		var a *Action
		if f != nil {
			a = f(req)
		}
		switch {
		case a == nil:
			rp.ServeHTTP(w, req)
		case a.Status != 0:
			w.WriteHeader(a.Status)
		default:
			rp.ServeHTTP(&faultWriter{ResponseWriter: w, cut: a.CutAfter, corrupt: a.Corrupt}, req)
		}
	})}
	go p.srv.Serve(l)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		p.srv.Shutdown(ctx)
		p.srv.Close()
	})
	return p
}

// faultWriter cuts or corrupts a response body on its way out.
type faultWriter struct {
	http.ResponseWriter
	cut     int64
	corrupt bool
	n       int64
}

func (f *faultWriter) Write(b []byte) (int, error) {
	if f.corrupt && f.n == 0 && len(b) > 0 {
		c := append([]byte(nil), b...)
		c[len(c)/2] ^= 0xff
		b = c
	}
	if f.cut > 0 && f.n+int64(len(b)) > f.cut {
		b = b[:f.cut-f.n]
		f.ResponseWriter.Write(b)
		// Abort the response mid-body: net/http closes the connection,
		// which the client sees as an unexpected EOF.
		panic(http.ErrAbortHandler)
	}
	n, err := f.ResponseWriter.Write(b)
	f.n += int64(n)
	return n, err
}

// Flush lets the reverse proxy stream.
func (f *faultWriter) Flush() {
	if fl, ok := f.ResponseWriter.(http.Flusher); ok {
		fl.Flush()
	}
}
