# Release builds of Nodepool for Go.
#
#   make build                 the three binaries in bin/ (version from the source)
#   make release VERSION=1.2.3 static binaries per platform in dist/, version stamped
#   make images  VERSION=1.2.3 the launcher and builder container images (podman or buildah)
#
# VERSION defaults to `git describe` of the checkout.

VERSION   ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo 0.1.0)
PLATFORMS ?= linux/amd64 linux/arm64
GO        ?= go
IMAGE_TOOL ?= $(shell command -v podman || command -v buildah)
IMAGE_REPO ?= localhost/nodepool-go
BINARIES  := nodepool nodepool-launcher nodepool-builder
LDFLAGS   := -s -w -X github.com/nodepool-go/nodepool/internal/version.stamp=$(VERSION)

.PHONY: build release images clean

build:
	$(GO) build -o bin/ $(addprefix ./cmd/,$(BINARIES))

release:
	@set -e; for p in $(PLATFORMS); do \
	  os=$${p%/*}; arch=$${p#*/}; dir=dist/nodepool-$(VERSION)-$$os-$$arch; \
	  mkdir -p $$dir; \
	  CGO_ENABLED=0 GOOS=$$os GOARCH=$$arch $(GO) build -trimpath -ldflags "$(LDFLAGS)" \
	    -o $$dir/ $(addprefix ./cmd/,$(BINARIES)); \
	  cp LICENSE README.md $$dir/; \
	  mkdir -p $$dir/systemd && cp packaging/systemd/*.service packaging/logging.conf $$dir/systemd/; \
	  tar -C dist -czf $$dir.tar.gz $$(basename $$dir); \
	  echo "built $$dir.tar.gz"; \
	done
	cd dist && sha256sum *.tar.gz > SHA256SUMS

images:
	@test -n "$(IMAGE_TOOL)" || { echo "podman or buildah is needed" >&2; exit 1; }
	for t in nodepool-launcher nodepool-builder; do \
	  $(IMAGE_TOOL) build $(IMAGE_BUILD_ARGS) --build-arg VERSION=$(VERSION) \
	    --target $$t -t $(IMAGE_REPO)/$$t:$(VERSION) -f Containerfile . || exit 1; \
	done

clean:
	rm -rf bin dist
