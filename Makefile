# Few, obvious targets. `make test` is what CI runs (through .ci/run).
GO      ?= go
BIN     := bin/olimage
FLEET   := examples/openlibrary
OUT     := out

FUZZTIME ?= 30s
PREFIX  ?= /usr/local
# The version recorded in every image's manifest and printed by
# olimage --version.
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
# e2fsck, mkfs.ext4, debugfs and resize2fs live in /usr/sbin, which a normal
# user's PATH often lacks.
export PATH := $(PATH):/usr/sbin:/sbin

.PHONY: build test test-long e2e demo lint cross bench fuzz man install clean

build:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags "-X main.version=$(VERSION)" -o $(BIN) ./cmd/olimage

# make test: the quick suite (-short leaves out the long image matrices),
# under 3 minutes on 2 cores. make test-long: every case, with the race
# detector. CI runs both. As a normal user the tests that need root (loop
# mounts, owners) skip; the last line says so.
test:
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { gofmt -l $$(git ls-files '*.go'); echo "gofmt: files above need formatting"; exit 1; }
	$(GO) vet ./...
	$(GO) test -short -count=1 -timeout 10m ./...
	@$(MAKE) -s skipped-note

test-long:
	$(GO) test -race -count=1 -timeout 60m ./...
	@$(MAKE) -s skipped-note

.PHONY: skipped-note
skipped-note:
	@if [ "$$(id -u)" != 0 ]; then \
		echo; \
		echo "********************************************************************"; \
		echo "* NOT ROOT: the loop-mount, ownership and other real-tool checks   *"; \
		echo "* were SKIPPED. Run make test as root (or in CI) to run them.      *"; \
		echo "********************************************************************"; \
	fi

# Man pages for olimage and each command, in man/man1.
man: build
	rm -rf man
	$(BIN) man man/man1

install: build man
	install -D -m 0755 $(BIN) $(DESTDIR)$(PREFIX)/bin/olimage
	install -d $(DESTDIR)$(PREFIX)/share/man/man1
	install -m 0644 man/man1/*.1 $(DESTDIR)$(PREFIX)/share/man/man1/

# The VM tests (e2e/): a busybox VM activates the ol-web image; a Debian
# systemd VM runs README's "On a VM" through boots, releases, a rollback and
# a volume opened through dm-verity, then tampered with.
# That VM's root is built with mmdebstrap once and cached in
# ~/.cache/olimage-e2e ($OLIMAGE_E2E_CACHE). Without KVM on a busy 2-core
# host: the root 2 to 6 minutes (once), the systemd VM's seven boots 12 minutes
# (1 to 2.5 each) on a quiet host, 33 minutes (3 to 7 each) on a loaded one.
e2e:
	OLIMAGE_E2E=1 $(GO) test -count=1 -v -timeout 75m ./e2e

demo: build
	$(BIN) -f $(FLEET) validate
	$(BIN) -f $(FLEET) build ol-web -o $(OUT)/
	for img in $(OUT)/ol-web-*.img; do e2fsck -fn $$img || exit 1; done

lint:
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { gofmt -l $$(git ls-files '*.go'); echo "gofmt: files above need formatting"; exit 1; }
	$(GO) vet ./...
	$(GO) run honnef.co/go/tools/cmd/staticcheck@v0.8.2 ./...
	@$(MAKE) -s cross

# The read side (inspect, ls, cat, extract, diff) runs on a Mac too, and
# the VMs may be arm64: the CLI cross-compiles, and vet checks the code
# (tests too) as darwin sees it, where Linux-only calls have fallbacks.
cross:
	CGO_ENABLED=0 GOOS=darwin GOARCH=arm64 $(GO) build -o /dev/null ./cmd/olimage
	CGO_ENABLED=0 GOOS=linux GOARCH=arm64 $(GO) build -o /dev/null ./cmd/olimage
	CGO_ENABLED=0 GOOS=darwin GOARCH=arm64 $(GO) vet ./...

# The Go benchmarks first: each pairs an optimisation with the plain
# version it replaces (their comments quote the numbers).
bench: build
	$(GO) test -run '^$$' -bench 'BenchmarkLess' -count 3 ./tree
	$(GO) test -run '^$$' -bench 'BenchmarkAppendEntry|BenchmarkEntryJSON|BenchmarkChunks|BenchmarkDiffering|BenchmarkDecodeBoth' -benchtime 10x -count 3 ./manifest
	$(GO) test -run '^$$' -bench 'BenchmarkNext' -benchtime 5x -count 3 ./internal/tarread
	$(GO) test -run '^$$' -bench 'BenchmarkHashRaw|BenchmarkHashOS' -benchtime 20x -count 3 ./overlays
	$(GO) test -run '^$$' -bench 'BenchmarkManifestMapped|BenchmarkManifestRead' -benchtime 30x -count 3 ./operand
	$(GO) test -run '^$$' -bench 'BenchmarkBuildRaw' -benchtime 3x -count 3 ./builder
	bash bench/run.sh

# Every fuzz target of every package, FUZZTIME each. go test runs their
# seed corpora as ordinary tests, so CI covers the seeds.
fuzz:
	@for pkg in $$($(GO) list ./...); do \
		for target in $$($(GO) test -list '^Fuzz' $$pkg | grep '^Fuzz'); do \
			echo "== $$pkg $$target"; \
			$(GO) test $$pkg -run '^$$' -fuzz "^$$target$$" -fuzztime $(FUZZTIME) -fuzzminimizetime 1s || exit 1; \
		done; \
	done

clean:
	rm -rf bin man $(OUT)
