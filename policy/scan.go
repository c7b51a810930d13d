package policy

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"regexp"
	"strings"
)

// Hit is a line of content that looks like a secret.
type Hit struct {
	Line int
	What string
}

// maxLine is how much of one line is looked at; the rest of a longer line
// is skipped, so a minified file costs no more than a normal one.
const maxLine = 4096

// Scan reads at most ScanLimit bytes of r and returns the lines that look
// like secrets. Content with a NUL byte in its first block is binary and
// not scanned.
func Scan(r io.Reader) ([]Hit, error) { return new(Scanner).Scan(r) }

// Scanner scans one content after another with one buffer: a buffer for
// each of a million small files was a third of the time of a scan. The
// zero value is ready; it is not safe for concurrent use.
type Scanner struct {
	lr io.LimitedReader
	br *bufio.Reader
	in bytes.Reader // what ScanBytes reads
}

// Scan is the package's Scan with s's buffer.
func (s *Scanner) Scan(r io.Reader) ([]Hit, error) {
	s.lr = io.LimitedReader{R: r, N: ScanLimit}
	if s.br == nil {
		s.br = bufio.NewReaderSize(&s.lr, maxLine)
	} else {
		s.br.Reset(&s.lr)
	}
	br := s.br
	head, err := br.Peek(512)
	if err != nil && !errors.Is(err, io.EOF) {
		return nil, err
	}
	if bytes.IndexByte(head, 0) >= 0 {
		return nil, nil
	}
	var hits []Hit
	for n := 1; ; n++ {
		line, err := br.ReadSlice('\n')
		if errors.Is(err, bufio.ErrBufferFull) {
			// Look at the start of the line, skip its rest.
			if what := Line(string(line)); what != "" {
				hits = append(hits, Hit{n, what})
			}
			for errors.Is(err, bufio.ErrBufferFull) {
				_, err = br.ReadSlice('\n')
			}
		} else if len(line) > 0 {
			if what := Line(string(line)); what != "" {
				hits = append(hits, Hit{n, what})
			}
		}
		if errors.Is(err, io.EOF) {
			return hits, nil
		}
		if err != nil {
			return nil, err
		}
	}
}

// ScanBytes is Scan of content held in b, with s's buffer. Content
// shorter than any line Line flags has no hits, and is not looked at:
// a tree of a million one-byte files spent more time scanning them than
// hashing them.
func (s *Scanner) ScanBytes(b []byte) ([]Hit, error) {
	if len(b) < minSecret {
		return nil, nil
	}
	s.in.Reset(b)
	return s.Scan(&s.in)
}

// minSecret is the length of the shortest line that Line flags,
// "token=a": an assignment needs a key that ends in one of secretKeys
// ("token" is the shortest), ':' or '=', and a literal value; the other
// detectors need more (a password in a URL "a://b:c@", a token twenty
// characters, a key block its "-----BEGIN ... PRIVATE KEY-----").
const minSecret = len("token=a")

var (
	privateKey = regexp.MustCompile(`^-----BEGIN ([A-Z0-9]+ )*PRIVATE KEY( BLOCK)?-----`)
	tokens     = []struct {
		re   *regexp.Regexp
		has  string // a literal every match contains
		what string
	}{
		{regexp.MustCompile(`\b(AKIA|ASIA)[0-9A-Z]{16}\b`), "IA", "an AWS access key id"},
		{regexp.MustCompile(`\b(ghp|gho|ghu|ghs|ghr)_[A-Za-z0-9]{36}\b`), "gh", "a GitHub token"},
		{regexp.MustCompile(`\bgithub_pat_[A-Za-z0-9_]{40,}`), "github_pat_", "a GitHub token"},
		{regexp.MustCompile(`\bxox[abposr]-[A-Za-z0-9-]{10,}`), "xox", "a Slack token"},
		{regexp.MustCompile(`\bsk_live_[A-Za-z0-9]{20,}`), "sk_live_", "a Stripe secret key"},
		{regexp.MustCompile(`\bAIza[0-9A-Za-z_-]{35}\b`), "AIza", "a Google API key"},
	}
	// assignment is KEY = VALUE or KEY: VALUE, the key maybe quoted or
	// exported, as configuration files, shell and Python write it.
	assignment = regexp.MustCompile(`^\s*(?:export\s+|-\s+)?["']?([A-Za-z0-9_.-]+)["']?\s*([:=])(.*)$`)
	// credentialURL is a password inside a URL: scheme://user:password@host.
	credentialURL = regexp.MustCompile(`[a-z][a-z0-9+.-]*://[^/\s:@'"]+:([^/\s@'"]+)@`)
	secretKeys    = []string{"password", "passwd", "passphrase", "secret", "token", "apikey", "api_key", "secret_key", "secretkey", "access_key", "private_key"}
)

// Line says why one line of text looks like a secret, or "".
func Line(s string) string { return line(s, true) }

// line is Line; with filter false every regular expression runs on every
// line, which tests compare the filtered path with.
func line(s string, filter bool) string {
	// Each regular expression runs only on lines holding a literal it
	// cannot match without: Go's backtracker on every line of a 60k-file
	// tree took 49 s of the 52 s CPU of its build (make bench, fleet).
	t := strings.TrimSpace(s)
	if (!filter || strings.HasPrefix(t, "-----BEGIN ")) && privateKey.MatchString(t) {
		return "a private key block (" + strings.Trim(t, "-") + ")"
	}
	for _, tk := range tokens {
		if filter && !strings.Contains(s, tk.has) {
			continue
		}
		if m := tk.re.FindString(s); m != "" && !strings.Contains(m, "EXAMPLE") {
			return tk.what + " (" + redact(m) + ")"
		}
	}
	if !filter || strings.Contains(s, "://") {
		if m := credentialURL.FindStringSubmatch(s); m != nil && !Placeholder(m[1]) {
			return "a password in a URL"
		}
	}
	if filter && !secretWord(t) {
		return "" // secretKey would refuse any key the line can hold
	}
	m := assignment.FindStringSubmatch(t)
	if m == nil {
		return ""
	}
	key, value := m[1], m[3]
	if strings.HasPrefix(value, "=") || (m[2] == ":" && strings.HasPrefix(value, ":")) {
		return "" // a comparison (==) or a namespace (::), not an assignment
	}
	if !secretKey(key) {
		return ""
	}
	v, ok := literal(value)
	if !ok || Placeholder(v) {
		return ""
	}
	return "a literal value for " + key
}

// secretWord reports whether s holds, in any case, a word that each of
// secretKeys contains: without one no key in s is a secret's.
func secretWord(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i] | 0x20 // lower case, for letters
		if c != 'p' && c != 's' && c != 't' && c != 'a' {
			continue
		}
		for _, w := range secretWords {
			if w[0] == c && foldPrefix(s[i:], w) {
				return true
			}
		}
	}
	return false
}

// foldPrefix reports whether s starts with w, a lower-case ASCII word, in
// any case.
func foldPrefix(s, w string) bool {
	if len(s) < len(w) {
		return false
	}
	for j := 0; j < len(w); j++ {
		c := s[j]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != w[j] {
			return false
		}
	}
	return true
}

// secretWords are the parts of secretKeys that secretWord looks for.
var secretWords = []string{"pass", "secret", "token", "apikey", "api_key", "access_key", "private_key"}

func secretKey(key string) bool {
	k := strings.ToLower(strings.TrimLeft(key, "-"))
	for _, s := range secretKeys {
		if k == s || strings.HasSuffix(k, "_"+s) || strings.HasSuffix(k, "-"+s) || strings.HasSuffix(k, "."+s) {
			return true
		}
	}
	return false
}

// literal returns the value an assignment's right side spells out, and
// false when it is code (a call, a reference, a type annotation) rather
// than a literal.
func literal(rhs string) (string, bool) {
	v := strings.TrimSpace(rhs)
	v = strings.TrimRight(v, ",;")
	if v == "" {
		return "", true
	}
	if q := v[0]; q == '"' || q == '\'' || q == '`' {
		if end := strings.IndexByte(v[1:], q); end >= 0 {
			return v[1 : 1+end], true
		}
		return v[1:], true
	}
	if i := strings.Index(v, " #"); i >= 0 {
		v = strings.TrimSpace(v[:i])
	}
	if strings.ContainsAny(v, " \t()[]{}") && !strings.HasPrefix(v, "${") && !strings.HasPrefix(v, "{{") {
		return "", false // code, a YAML flow or a phrase: not a single literal
	}
	switch strings.ToLower(v) {
	case "none", "null", "nil", "~", "true", "false", "|", ">", "|-", ">-":
		return "", false
	}
	if dotted.MatchString(v) {
		return "", false // settings.DB_PASSWORD: a reference to a value
	}
	return v, true
}

var (
	dotted = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)+$`)
	// placeholderWord is a value that names what goes there rather than
	// being it: SET-FROM-ENVIRONMENT, CHANGE_ME, REDACTED.
	placeholderWord = regexp.MustCompile(`^[A-Z][A-Z0-9]*([_-][A-Z0-9]+)*$`)
	substitution    = regexp.MustCompile(`^(\$\{[^}]*\}|\$\([^)]*\)|\$[A-Za-z_][A-Za-z0-9_]*|%\([^)]*\)[sdr]|%s|\{\{.*\}\}|\{[A-Za-z_][A-Za-z0-9_]*\}|<[^>]*>|\*+|x+|\.\.\.)$`)
)

// Placeholder reports whether a value stands for a secret supplied
// elsewhere: empty, a substitution (${VAR}, $VAR, %(x)s, {{ x }}, <x>), a
// capitalized name (SET-FROM-ENVIRONMENT), a mask (****), or a path.
func Placeholder(v string) bool {
	v = strings.TrimSpace(v)
	return v == "" || substitution.MatchString(v) || (len(v) >= 3 && placeholderWord.MatchString(v)) ||
		strings.HasPrefix(v, "/")
}

// redact shows the start of a token, enough to find it, not to use it.
func redact(s string) string {
	if len(s) <= 8 {
		return s
	}
	return s[:8] + "..."
}

// SecretName says why a file name is one secrets are kept under, or "".
func SecretName(name string) string {
	switch name {
	case ".env":
		return "an environment file, which holds secrets"
	case "id_rsa", "id_dsa", "id_ecdsa", "id_ed25519", "id_ecdsa_sk", "id_ed25519_sk", "identity":
		return "an SSH private key's name"
	case ".netrc", ".pgpass", ".git-credentials", ".htpasswd", ".my.cnf":
		return "a credentials file's name"
	}
	if strings.HasPrefix(name, ".env.") {
		switch strings.TrimPrefix(name, ".env.") {
		case "example", "sample", "template", "dist", "defaults":
			return ""
		}
		return "an environment file, which holds secrets"
	}
	for _, ext := range []string{".p12", ".pfx", ".jks", ".keystore"} {
		if strings.HasSuffix(name, ext) {
			return "a key store's name"
		}
	}
	return ""
}
