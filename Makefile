# ros — front door. `make run` builds and starts ros; `make test` runs every test.
# Both install what they need (Debian packages) first, idempotently.

SHELL := /bin/bash
CARGO ?= cargo
FIXTURES := target/fixtures
SOCK ?= /run/system-docker.sock

# Debian packages the build and the tests use: real tools only (docker CLI + dockerd,
# runc, skopeo/umoci to make test images, busybox, a registry server, QEMU and the file
# system tools that make boot disks without mounting anything).
APT_PACKAGES := docker.io runc skopeo umoci busybox-static docker-registry squashfs-tools curl jq dnsmasq cloud-init e2fsprogs fdisk zstd cpio dosfstools mtools xorriso erofs-utils
# QEMU 7.2 comes with Debian 12's own qemu-utils: a newer qemu-utils installed from
# backports blocks it, so both are installed together (qemu-img stays).
QEMU_PACKAGES := qemu-system-x86 qemu-utils/bookworm

# `make run`: the VM's memory, its state disk (kept between runs) and extra kernel arguments.
RUN_MEM ?= 1024
RUN_DIR ?= .cache/run
RUN_APPEND ?=

.PHONY: all deps build release fixtures images image run test test-full bench fmt lint clean

all: build

deps:
	@missing=$$(for p in $(APT_PACKAGES); do dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q '^install ok installed' || echo $$p; done); \
	if [ -n "$$missing" ]; then \
		echo "deps: installing $$missing"; \
		export DEBIAN_FRONTEND=noninteractive; \
		apt-get update -qq && apt-get install -y -qq --no-install-recommends $$missing; \
	else echo "deps: all present"; fi
	@if ! dpkg-query -W -f='$${Status}\n' qemu-system-x86 2>/dev/null | grep -q '^install ok installed'; then \
		echo "deps: installing $(QEMU_PACKAGES)"; \
		export DEBIAN_FRONTEND=noninteractive; \
		apt-get update -qq && apt-get install -y -qq --no-install-recommends --allow-downgrades $(QEMU_PACKAGES); \
	fi

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

# The boot artifacts: dist/vmlinuz, dist/initrd (ros as PID 1, busybox, modules), the
# system images as dist/images.sqfs, dist/manifest.json. VERSION=x.y.z sets the version.
image: deps
	$(CARGO) build --release -p ros -p system-docker -p image-build
	target/release/ros-image-build $(if $(VERSION),--image-version $(VERSION))

# Boots ros in QEMU (TCG) with the serial console on this terminal: the kernel and initrd of
# dist/, a boot slot (ext4 labelled ROS_A holding images.sqfs) and a state disk that is
# formatted on first boot and kept in $(RUN_DIR). A root shell autologins on the serial
# console; `poweroff` ends the VM (or Ctrl-A X).
run: image
	@mkdir -p $(RUN_DIR)/slot
	@cp --reflink=auto dist/images.sqfs $(RUN_DIR)/slot/images.sqfs
	@mkfs.ext4 -q -F -L ROS_A -d $(RUN_DIR)/slot $(RUN_DIR)/slot-a.img $$(( $$(stat -c %s dist/images.sqfs) / 1048576 + 64 ))M
	@[ -f $(RUN_DIR)/state.qcow2 ] || qemu-img create -q -f qcow2 $(RUN_DIR)/state.qcow2 8G
	qemu-system-x86_64 -machine q35,accel=tcg -cpu max -smp 2 -m $(RUN_MEM) -nographic -no-reboot \
		-kernel dist/vmlinuz -initrd dist/initrd \
		-append "console=ttyS0 panic=-1 quiet ros.autologin=ttyS0 ros.images=LABEL=ROS_A ros.state.autoformat=[/dev/vda] $(RUN_APPEND)" \
		-drive file=$(RUN_DIR)/state.qcow2,if=virtio,format=qcow2 \
		-drive file=$(RUN_DIR)/slot-a.img,if=virtio,format=raw,readonly=on \
		-device virtio-rng-pci -nic user,model=virtio-net-pci,restrict=on,hostfwd=tcp:127.0.0.1:2222-:22

# The engine alone on this host, in the foreground on $(SOCK) (the issue-2 front door).
run-engine: deps release
	target/release/system-docker daemon -H unix://$(SOCK)

test: deps build fixtures image
	$(CARGO) test --workspace --no-fail-fast

# The same tests with full trial counts (tests read ROS_TEST_FULL).
test-full: deps build fixtures image
	ROS_TEST_FULL=1 $(CARGO) test --workspace --no-fail-fast

bench: deps release fixtures image
	tests/bench/engine.sh
	$(CARGO) test -p ros-tests --test bench_boot -- --ignored --nocapture

fmt:
	$(CARGO) fmt --all

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

clean:
	$(CARGO) clean
