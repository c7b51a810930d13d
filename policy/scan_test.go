package policy

import (
	"math/rand/v2"
	"strings"
	"testing"
)

// Each detector with lines it must flag and lines that look alike and
// must pass.
func TestLine(t *testing.T) {
	tests := []struct {
		detector string
		line     string
		want     string // a part of the reason, "" for no finding
	}{
		{"private key", "-----BEGIN RSA PRIVATE KEY-----", "private key block"},
		{"private key", "-----BEGIN OPENSSH PRIVATE KEY-----", "private key block"},
		{"private key", "    -----BEGIN PRIVATE KEY-----", "private key block"},
		{"private key", "-----BEGIN EC PRIVATE KEY-----", "private key block"},
		{"private key", "-----BEGIN PGP PRIVATE KEY BLOCK-----", "private key block"},
		{"private key", "-----BEGIN CERTIFICATE-----", ""},
		{"private key", "-----BEGIN PUBLIC KEY-----", ""},
		{"private key", `if line.startswith("-----BEGIN RSA PRIVATE KEY-----"):`, ""},
		{"aws", "aws_access_key_id = AKIAQWERTYUIOPASDFGH", "AWS access key"},
		{"aws", "key: ASIAQWERTYUIOPASDFGH", "AWS access key"},
		{"aws", "aws_access_key_id = AKIAIOSFODNN7EXAMPLE", ""},
		{"aws", "AKIAshort", ""},
		{"github", "GH=ghp_0123456789abcdefghijABCDEFGHIJklmnop", "GitHub token"},
		{"github", "ghs_0123456789abcdefghijABCDEFGHIJklmnop in a sentence", "GitHub token"},
		{"github", "ghp_tooshort", ""},
		{"slack", "hook xoxb-123456789012-abcdefghij", "Slack token"},
		{"slack", "xoxz-123456789012", ""},
		{"url", "dsn = postgres://openlibrary:hunter2@db/openlibrary", "password in a URL"},
		{"url", "dsn = postgres://openlibrary:${PGPASSWORD}@db/openlibrary", ""},
		{"url", "see https://example.org:8080/path", ""},
		{"assignment", "password = hunter2", "literal value for password"},
		{"assignment", "secret=hunter2", "literal value for secret"},
		{"assignment", "token: abc123", "literal value for token"},
		{"assignment", `  "db_password": "hunter2",`, "literal value for db_password"},
		{"assignment", "export API_KEY='s3cr3t'", "literal value for API_KEY"},
		{"assignment", "SECRET_KEY = 'django-insecure-x'", "literal value for SECRET_KEY"},
		{"assignment", "--password=hunter2", "literal value for --password"},
		{"assignment", "password = hunter2 # rotate yearly", "literal value for password"},
		{"assignment", "password: SET-FROM-ENVIRONMENT", ""},
		{"assignment", "secret_key: SET-FROM-ENVIRONMENT", ""},
		{"assignment", "password = ${DB_PASSWORD}", ""},
		{"assignment", "password = $DB_PASSWORD", ""},
		{"assignment", "password = %(password)s", ""},
		{"assignment", "password: '{{ vault_password }}'", ""},
		{"assignment", "password: <your password>", ""},
		{"assignment", "password =", ""},
		{"assignment", `password = ""`, ""},
		{"assignment", "password: ~", ""},
		{"assignment", "password = None", ""},
		{"assignment", "password = os.environ['PW']", ""},
		{"assignment", "password = settings.DB_PASSWORD", ""},
		{"assignment", "token: /run/secrets/token", ""},
		{"assignment", "password: ********", ""},
		{"assignment", "if password == 'x':", ""},
		{"assignment", "server_tokens off;", ""},
		{"assignment", "tokenizer = 'simple'", ""},
		{"assignment", "max_tokens: 100", ""},
		{"assignment", "def check_password(password):", ""},
		{"assignment", "password: str = field()", ""},
	}
	for _, tc := range tests {
		t.Run(tc.detector+"/"+tc.line, func(t *testing.T) {
			got := Line(tc.line)
			if tc.want == "" && got != "" || !strings.Contains(got, tc.want) {
				t.Errorf("Line(%q) = %q, want %q", tc.line, got, tc.want)
			}
		})
	}
}

func TestSecretName(t *testing.T) {
	for name, secret := range map[string]bool{
		".env": true, ".env.production": true, "id_rsa": true, "id_ed25519": true, ".pgpass": true, "server.p12": true,
		".env.example": false, "id_rsa.pub": false, "id_ed25519.pub": false, "env": false, "README": false, "environment.py": false,
	} {
		if got := SecretName(name) != ""; got != secret {
			t.Errorf("SecretName(%q) = %q, want a finding: %v", name, SecretName(name), secret)
		}
	}
}

func TestScan(t *testing.T) {
	long := strings.Repeat("a", 3*maxLine) + "\n"
	tests := []struct {
		name    string
		content string
		want    []int // lines with hits
	}{
		{"lines counted", "a: 1\nb: 2\npassword = hunter2\n", []int{3}},
		{"no final newline", "x\ntoken: abc", []int{2}},
		{"after a long line", long + "secret = x1\n", []int{2}},
		{"in a long line", "password = hunter2" + long, []int{1}},
		{"binary", "\x00\x01password = hunter2\n", nil},
		{"beyond the limit", strings.Repeat("x\n", ScanLimit/2) + "password = hunter2\n", nil},
		{"several", "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAA\n-----END OPENSSH PRIVATE KEY-----\npassword: SET-FROM-ENVIRONMENT\nsecret: k3y\n", []int{1, 5}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			hits, err := Scan(strings.NewReader(tc.content))
			if err != nil {
				t.Fatal(err)
			}
			var got []int
			for _, h := range hits {
				got = append(got, h.Line)
			}
			if len(got) != len(tc.want) {
				t.Fatalf("got hits on lines %v, want %v", got, tc.want)
			}
			for i := range got {
				if got[i] != tc.want[i] {
					t.Fatalf("got hits on lines %v, want %v", got, tc.want)
				}
			}
		})
	}
}

func FuzzScan(f *testing.F) {
	for _, s := range []string{"password = hunter2\n", "-----BEGIN PRIVATE KEY-----\n", "x: ${A}\n", "\x00", strings.Repeat("a", 5000)} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		hits, err := Scan(strings.NewReader(string(b)))
		if err != nil {
			t.Fatal(err)
		}
		for _, h := range hits {
			if h.Line < 1 || h.What == "" {
				t.Fatalf("bad hit %+v", h)
			}
		}
	})
}

// The literals Line looks for before running a regular expression never
// make it miss what the expressions alone find.
func FuzzLineFilter(f *testing.F) {
	for _, s := range []string{
		"-----BEGIN RSA PRIVATE KEY-----", "aws_access_key_id = AKIAQWERTYUIOPASDFGH", "key: ASIAQWERTYUIOPASDFGH",
		"GH=ghp_0123456789abcdefghijABCDEFGHIJklmnop", "hook xoxb-123456789012-abcdefghij", "github_pat_" + strings.Repeat("a1", 21),
		"sk_live_0123456789abcdefghij", "AIza" + strings.Repeat("B", 35), "dsn = postgres://openlibrary:hunter2@db/openlibrary",
		"password = hunter2", "export API_KEY='s3cr3t'", "SECRET_KEY = 'django-insecure-x'", "db_PassWord: x", "Private_Key=k",
		"ACCESS_KEY=abc", "x.apikey = q", "max_tokens: 100", "plain text, nothing here", "",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if got, want := line(s, true), line(s, false); got != want {
			t.Fatalf("Line(%q) = %q, the expressions alone say %q", s, got, want)
		}
	})
}

// No line shorter than minSecret is flagged, and one of that length is:
// ScanBytes skips no content that Scan would find a secret in. Lines are
// made of the characters every detector's shortest match uses.
func TestMinSecret(t *testing.T) {
	if Line("token=a") == "" || len("token=a") != minSecret {
		t.Fatalf("Line(%q) = %q; minSecret %d is not the length of a flagged line", "token=a", Line("token=a"), minSecret)
	}
	rng := rand.New(rand.NewPCG(3, 4))
	const alphabet = "tokenpasw_ecrAI:=@/ -a\"'1"
	for range 200000 {
		b := make([]byte, rng.IntN(minSecret))
		for i := range b {
			b[i] = alphabet[rng.IntN(len(alphabet))]
		}
		if why := Line(string(b)); why != "" {
			t.Fatalf("Line(%q) = %q: a line shorter than minSecret (%d) is flagged", b, why, minSecret)
		}
	}
	var s Scanner
	for _, c := range []string{"", "x", "token=", "token=a", "token=a\n", "x\npassword = hunter2\n", "a\x00token=a"} {
		want, err := Scan(strings.NewReader(c))
		if err != nil {
			t.Fatal(err)
		}
		got, err := s.ScanBytes([]byte(c))
		if err != nil || len(got) != len(want) {
			t.Errorf("ScanBytes(%q) = %v, %v; Scan finds %v", c, got, err, want)
		}
	}
}
