GO ?= go
FUZZTIME ?= 30s

.PHONY: build test fuzz bench speed lint sample ci

# A static binary (no cgo: archive/tar would otherwise link os/user dynamically) that records the
# commit it was built from (dstack-mr --version, "tool_version" in every JSON output).
build:
	CGO_ENABLED=0 $(GO) build -trimpath -buildvcs=true -o bin/dstack-mr ./cmd/dstack-mr

test:
	$(GO) test ./...

# Runs every fuzz target for FUZZTIME (one at a time; go test -fuzz takes one target).
fuzz:
	FUZZTIME=$(FUZZTIME) bash -c 'for pkg in $$($(GO) list ./...); do dir=$$($(GO) list -f "{{.Dir}}" $$pkg); for t in $$(grep -ho "^func Fuzz[A-Za-z0-9_]*" $$dir/*_test.go 2>/dev/null | sed "s/^func //"); do echo "$$pkg $$t"; $(GO) test $$pkg -run="^$$" -fuzz="^$$t$$" -fuzztime=$(FUZZTIME) || exit 1; done; done'

bench:
	$(GO) test -run='^$$' -bench=. -benchmem ./...

# A cold `measure` against `sha384sum` of the same files, as whole processes, in alternating
# pairs (scripts/speed-vs-sha384sum.sh): the sample image's firmware and kernel and a random
# SPEED_INITRD_MIB MiB initrd made in a temporary directory. Prints the median ratio and spread.
PAIRS ?= 15
SPEED_INITRD_MIB ?= 96
speed: build
	scripts/speed-vs-sha384sum.sh -n $(PAIRS) --initrd-mib $(SPEED_INITRD_MIB) \
		testdata/sample-image/ovmf-debian-2025.02-8+deb13u1.fd testdata/sample-image/bzImage-6.1.0-56-amd64

lint:
	test -z "$$(gofmt -l $$(git ls-files '*.go'))"
	$(GO) vet ./...

sample:
	$(GO) run ./cmd/dstack-mr measure testdata/sample-image/metadata.json

ci:
	bash .ci/run
