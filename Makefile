# Few, obvious targets. `make test` is what CI runs (through .ci/run).
GO      ?= go
BIN     := bin/olimage
FLEET   := examples/openlibrary
OUT     := out

.PHONY: build test demo lint bench fuzz clean

build:
	$(GO) build -trimpath -o $(BIN) ./cmd/olimage

test:
	$(GO) vet ./...
	$(GO) test -race -count=1 ./...

demo: build
	$(BIN) -f $(FLEET) validate
	$(BIN) -f $(FLEET) build ol-web -o $(OUT)/
	for img in $(OUT)/ol-web-*.img; do e2fsck -fn $$img || exit 1; done

lint:
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { gofmt -l $$(git ls-files '*.go'); echo "gofmt: files above need formatting"; exit 1; }
	$(GO) vet ./...
	$(GO) run honnef.co/go/tools/cmd/staticcheck@2025.1.1 ./...

bench: build
	bash bench/run.sh

clean:
	rm -rf bin $(OUT)
