# Few, obvious targets. `make test` is what CI runs (through .ci/run).
GO      ?= go
BIN     := bin/olimage
FLEET   := examples/openlibrary
OUT     := out

FUZZTIME ?= 30s

.PHONY: build test e2e demo lint bench fuzz clean

build:
	$(GO) build -trimpath -o $(BIN) ./cmd/olimage

test:
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { gofmt -l $$(git ls-files '*.go'); echo "gofmt: files above need formatting"; exit 1; }
	$(GO) vet ./...
	$(GO) test -race -count=1 ./...

# The VM tests (e2e/): a busybox VM activates the ol-web image; a Debian
# systemd VM runs README's "On a VM" through boots, releases and a rollback.
# That VM's root is built with mmdebstrap once and cached in
# ~/.cache/olimage-e2e ($OLIMAGE_E2E_CACHE). Without KVM, about 25 minutes.
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

bench: build
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
	rm -rf bin $(OUT)
