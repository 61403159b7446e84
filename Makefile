# ros — front door. `make run` builds and starts ros; `make test` runs every test.
# Both install what they need (Debian packages) first, idempotently.

SHELL := /bin/bash
CARGO ?= cargo
FIXTURES := target/fixtures
SOCK ?= /run/system-docker.sock

# Debian packages the build and the tests use: real tools only (docker CLI + dockerd,
# runc, skopeo/umoci to make test images, busybox, a registry server).
APT_PACKAGES := docker.io runc skopeo umoci busybox-static docker-registry squashfs-tools curl jq dnsmasq cloud-init

.PHONY: all deps build release fixtures images run test test-full bench fmt lint clean

all: build

deps:
	@missing=$$(for p in $(APT_PACKAGES); do dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q '^install ok installed' || echo $$p; done); \
	if [ -n "$$missing" ]; then \
		echo "deps: installing $$missing"; \
		export DEBIAN_FRONTEND=noninteractive; \
		apt-get update -qq && apt-get install -y -qq --no-install-recommends $$missing; \
	else echo "deps: all present"; fi

build:
	$(CARGO) build --workspace --bins

release:
	$(CARGO) build --release --workspace --bins

fixtures: deps
	tests/fixtures/build-images.sh $(FIXTURES)

# The system images (image-build/spec.yml): dist/images/<name>.tar and, as root, the
# read-only pre-unpacked store dist/images/store. Debian packages are downloaded with apt
# into .cache/ (never installed here). VERSION=x.y.z overrides the image version.
images:
	$(CARGO) build --release -p image-build
	target/release/ros-image-build $(if $(VERSION),--image-version $(VERSION))

# Until the bootable image exists, `run` builds the engine and starts it in the foreground
# on $(SOCK); use it with `target/release/system-docker -H unix://$(SOCK) ps` or the stock
# `docker -H unix://$(SOCK)`.
run: deps release
	target/release/system-docker daemon -H unix://$(SOCK)

test: deps build fixtures
	$(CARGO) test --workspace --no-fail-fast

# The same tests with full trial counts (tests read ROS_TEST_FULL).
test-full: deps build fixtures
	ROS_TEST_FULL=1 $(CARGO) test --workspace --no-fail-fast

bench: deps release fixtures
	tests/bench/engine.sh

fmt:
	$(CARGO) fmt --all

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

clean:
	$(CARGO) clean
