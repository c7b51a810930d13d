package main

import (
	"bufio"
	"bytes"
	"os"
	"regexp"
	"sort"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

// Every olimage command line of the CI example and of docs/release.md
// names a command that exists, with flags it has and the arguments it
// takes: copied as they are, they run.
func TestWorkflowCommands(t *testing.T) {
	data, err := os.ReadFile("../../examples/ci/github-actions.yml")
	if err != nil {
		t.Fatal(err)
	}
	var wf struct {
		On   map[string]any `yaml:"on"`
		Jobs map[string]struct {
			Needs    any `yaml:"needs"`
			Strategy struct {
				Matrix map[string]any `yaml:"matrix"`
			} `yaml:"strategy"`
			Steps []struct {
				Run string `yaml:"run"`
			} `yaml:"steps"`
		} `yaml:"jobs"`
	}
	if err := yaml.Unmarshal(data, &wf); err != nil {
		t.Fatalf("github-actions.yml: %v", err)
	}
	var lines []string
	for _, name := range []string{"roles", "build", "diff"} {
		job, ok := wf.Jobs[name]
		if !ok || len(job.Steps) == 0 {
			t.Fatalf("github-actions.yml: no job %q with steps", name)
		}
		if name != "roles" && job.Strategy.Matrix["role"] == nil {
			t.Errorf("github-actions.yml: job %s has no matrix over roles", name)
		}
		for _, s := range job.Steps {
			lines = append(lines, invocations(s.Run)...)
		}
	}
	doc, err := os.ReadFile("../../docs/release.md")
	if err != nil {
		t.Fatal(err)
	}
	var fromDoc []string
	inSh := false
	sc := bufio.NewScanner(bytes.NewReader(doc))
	for sc.Scan() {
		switch l := sc.Text(); {
		case l == "```sh":
			inSh = true
		case l == "```":
			inSh = false
		case inSh:
			fromDoc = append(fromDoc, invocations(l)...)
		}
	}
	used := map[string]bool{}
	for _, line := range append(lines, fromDoc...) {
		args := shellWords(line)
		used[checkInvocation(t, line, args[1:])] = true
	}
	want := []string{"build", "diff", "inspect", "pull", "push", "roles", "validate", "verify", "fstab", "activate-unit"}
	var missing []string
	for _, c := range want {
		if !used[c] {
			missing = append(missing, c)
		}
	}
	sort.Strings(missing)
	if len(missing) > 0 {
		t.Errorf("the workflow and docs/release.md never run %v", missing)
	}
}

// invocations returns the olimage command lines in a shell script: from
// "olimage" where it begins a command to the end of that command.
func invocations(script string) []string {
	var out []string
	for _, m := range olimageAt.FindAllStringIndex(script, -1) {
		rest := script[m[1]-len("olimage"):]
		out = append(out, rest[:commandEnd(rest)])
	}
	return out
}

var olimageAt = regexp.MustCompile(`(^|\n|\$\(|[|;]|&&|\bthen)\s*olimage\b`)

// commandEnd finds where a command ends: a newline, pipe, redirection,
// ;, && or ) outside quotes.
func commandEnd(s string) int {
	var quote byte
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case quote != 0:
			if c == quote {
				quote = 0
			}
		case c == '"' || c == '\'':
			quote = c
		case c == '\n' || c == '|' || c == '>' || c == ';' || c == '&' || c == ')' || c == '#':
			return i
		}
	}
	return len(s)
}

// shellWords splits a command into words, with quotes removed and
// variables and ${{ }} expressions replaced by sample values.
func shellWords(s string) []string {
	s = regexp.MustCompile(`\$\{\{[^}]*\}\}`).ReplaceAllString(s, "ol-web")
	s = regexp.MustCompile(`\$\{?[A-Za-z_][A-Za-z0-9_]*(#[^}]*)?\}?`).ReplaceAllString(s, "x")
	var words []string
	var cur strings.Builder
	var quote byte
	in := false
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case quote != 0 && c == quote:
			quote = 0
		case quote != 0:
			cur.WriteByte(c)
		case c == '"' || c == '\'':
			quote, in = c, true
		case c == ' ' || c == '\t':
			if in {
				words = append(words, cur.String())
				cur.Reset()
				in = false
			}
		case c == '\\':
		default:
			cur.WriteByte(c)
			in = true
		}
	}
	if in {
		words = append(words, cur.String())
	}
	return words
}

// checkInvocation resolves args to a command and parses its flags and
// arguments as olimage would, without running it; it returns the
// command's name.
func checkInvocation(t *testing.T, line string, args []string) string {
	t.Helper()
	root := newRoot(&env{stdout: &bytes.Buffer{}, stderr: &bytes.Buffer{}})
	cmd, rest, err := root.Find(args)
	if err != nil || cmd == root {
		t.Errorf("%s: no such command (%v)", line, err)
		return ""
	}
	if err := cmd.ParseFlags(rest); err != nil {
		t.Errorf("%s: %v", line, err)
		return cmd.Name()
	}
	if err := cmd.ValidateArgs(cmd.Flags().Args()); err != nil {
		t.Errorf("%s: %v", line, err)
	}
	return cmd.Name()
}
