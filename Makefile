# Hull: build the guest appliance (kernel, agent, initrd, disk image, manifest), test
# it, install it. `make help` lists the targets.

SHELL := /bin/bash
.DEFAULT_GOAL := all
.DELETE_ON_ERROR:

HOST_ARCH := $(shell uname -m | sed -e 's/^arm64$$/aarch64/')
ARCH ?= $(HOST_ARCH)

ifeq ($(ARCH),x86_64)
  RUST_TARGET := x86_64-unknown-linux-musl
else ifeq ($(ARCH),aarch64)
  RUST_TARGET := aarch64-unknown-linux-musl
else ifeq ($(ARCH),ppc64le)
  RUST_TARGET := powerpc64le-unknown-linux-gnu
else ifeq ($(ARCH),s390x)
  RUST_TARGET := s390x-unknown-linux-gnu
else
  $(error ARCH=$(ARCH) is not supported: use x86_64, aarch64, ppc64le or s390x)
endif

BUILD := build/$(ARCH)
PREFIX ?= /usr/local
DESTDIR ?=
CARGO ?= cargo
CARGO_TARGET_DIR ?= target
export HULL_CACHE ?= /var/cache/hull
export SOURCE_DATE_EPOCH ?= $(shell git log -1 --format=%ct 2>/dev/null || echo 0)
export KERNEL_SRC KERNEL_FEATURES KERNEL_FRAGMENTS

HULL_VERSION := $(shell sed -n '/^\[workspace.package\]/,/^\[/s/^version = "\(.*\)"/\1/p' Cargo.toml)
HULL_IMAGE := $(CARGO_TARGET_DIR)/release/hull-image
AGENT_BIN := $(CARGO_TARGET_DIR)/$(RUST_TARGET)/guest/hull-agent
HOST_BINS := hull hull-image containerd-shim-hull-v2

# Dependencies: `make image` installs what is missing unless NO_DEPS=1, in which case
# it names what is missing and stops.
DEPS_GROUPS := build $(if $(filter $(ARCH),$(HOST_ARCH)),,cross)
define need_deps
	@if ! scripts/deps.sh --check --for "$(1)" >/dev/null 2>&1; then \
	  if [ -n "$(NO_DEPS)" ]; then scripts/deps.sh --check --for "$(1)"; exit 1; \
	  else scripts/deps.sh --for "$(1)"; fi; \
	fi
endef

.PHONY: all help deps image kernel agent initrd disk manifest verify tools \
        test test-arch bench check lint fmt install clean

all: image tools ## Build the image for ARCH and the host tools.

help: ## List the targets.
	@echo "usage: make [TARGET] [ARCH=x86_64|aarch64|ppc64le|s390x] [NO_DEPS=1]"
	@echo
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sort | \
	  awk 'BEGIN {FS = ":.*## "} {printf "  %-10s %s\n", $$1, $$2}'
	@echo
	@echo "Outputs go to build/<arch>/; expensive ones are cached in \$$HULL_CACHE ($(HULL_CACHE))."

deps: ## Install what the build and tests need (Debian/Ubuntu, as root).
	scripts/deps.sh

image: kernel initrd disk ## Kernel, agent, initrd, disk image and manifest in build/ARCH.
	$(HULL_IMAGE) manifest --dir $(BUILD) --arch $(ARCH)

kernel: ## Configure, verify and build the guest kernel (cached by input hash).
	$(call need_deps,$(DEPS_GROUPS))
	scripts/build-kernel.sh $(ARCH) $(BUILD)

agent: ## Build the static guest agent.
	$(call need_deps,$(DEPS_GROUPS))
	$(CARGO) build --profile guest -p hull-agent --target $(RUST_TARGET)
	@mkdir -p $(BUILD)
	cp $(AGENT_BIN) $(BUILD)/hull-agent.tmp && mv $(BUILD)/hull-agent.tmp $(BUILD)/hull-agent
	echo "$(HULL_VERSION)" > $(BUILD)/agent.version

tools: ## Build the host tools (hull, hull-image, the containerd shim).
	$(CARGO) build --release $(addprefix --bin ,$(HOST_BINS))

$(HULL_IMAGE): FORCE
	$(CARGO) build --release -p hull-image --bin hull-image

initrd: agent $(HULL_IMAGE) ## Assemble the rootfs tree and write initrd.img.
	$(HULL_IMAGE) rootfs --arch $(ARCH) --agent $(BUILD)/hull-agent --out $(BUILD)/rootfs
	$(HULL_IMAGE) initrd --rootfs $(BUILD)/rootfs --out $(BUILD)/initrd.img

disk: initrd ## Write the disk image rootfs.img (ext4 in a GPT partition).
	$(HULL_IMAGE) disk --rootfs $(BUILD)/rootfs --out $(BUILD)/rootfs.img

manifest: $(HULL_IMAGE) ## Write manifest.json for what is in build/ARCH.
	$(HULL_IMAGE) manifest --dir $(BUILD) --arch $(ARCH)

verify: $(HULL_IMAGE) ## Check build/ARCH against its manifest.
	$(HULL_IMAGE) verify $(BUILD)

test: image ## Build the image, then run every test (privileged and boot tests need root).
	$(call need_deps,$(DEPS_GROUPS) test qemu-$(ARCH))
	$(CARGO) build --workspace --bins
	HULL_BUILD_DIR=$(abspath $(BUILD)) $(CARGO) test --workspace

test-arch: image ## Boot tests for ARCH (cross-built) under its qemu-system.
	$(call need_deps,build cross test qemu-$(ARCH))
	$(CARGO) build --workspace --bins
	HULL_BUILD_DIR=$(abspath $(BUILD)) HULL_ARCH=$(ARCH) \
	  $(CARGO) test -p hull-image-tests -- --test-threads 1

bench: image tools ## Measure boot time, memory, sizes and throughput into build/ARCH/bench.md.
	HULL_BUILD_DIR=$(abspath $(BUILD)) HULL_ARCH=$(ARCH) \
	  $(CARGO) run --release -p hull-image-tests --bin hull-bench

lint: ## cargo fmt --check and clippy with warnings as errors.
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

check: lint test ## fmt, clippy -D warnings, then the tests.

fmt: ## Format the code.
	$(CARGO) fmt --all

install: ## Install host tools and the images (DESTDIR, PREFIX honoured).
	@for f in vmlinuz initrd.img rootfs.img manifest.json; do \
	  [ -e $(BUILD)/$$f ] || { echo "install: $(BUILD)/$$f is missing; run 'make' first" >&2; exit 1; }; \
	done
	@for b in $(HOST_BINS); do \
	  [ -e $(CARGO_TARGET_DIR)/release/$$b ] || { echo "install: $$b is not built; run 'make' first" >&2; exit 1; }; \
	done
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/share/hull/$(ARCH) $(DESTDIR)$(PREFIX)/share/hull/qemu
	install -m 0755 $(addprefix $(CARGO_TARGET_DIR)/release/,$(HOST_BINS)) $(DESTDIR)$(PREFIX)/bin/
	install -m 0644 $(addprefix $(BUILD)/,vmlinuz initrd.img rootfs.img manifest.json) \
	  $(DESTDIR)$(PREFIX)/share/hull/$(ARCH)/
	@for f in vmlinux kernel.config; do \
	  [ ! -e $(BUILD)/$$f ] || install -m 0644 $(BUILD)/$$f $(DESTDIR)$(PREFIX)/share/hull/$(ARCH)/; \
	done
	@[ -z "$$(ls qemu/*.toml 2>/dev/null)" ] || install -m 0644 qemu/*.toml $(DESTDIR)$(PREFIX)/share/hull/qemu/

clean: ## Remove build/ and cargo's target/ (the kernel cache in HULL_CACHE stays).
	rm -rf build
	$(CARGO) clean

FORCE:
