# ros — front door. `make run` builds and starts ros; `make test` runs every test.
# Both install what they need (Debian packages) first, idempotently.

SHELL := /bin/bash
CARGO ?= cargo
FIXTURES := target/fixtures
SOCK ?= /run/system-docker.sock

# Debian packages the build and the tests use: real tools only (docker CLI + dockerd,
# runc, skopeo/umoci to make test images, busybox, a registry server, QEMU and the file
# system tools that make boot disks without mounting anything).
APT_PACKAGES := docker.io runc skopeo umoci busybox-static docker-registry squashfs-tools curl jq dnsmasq cloud-init e2fsprogs fdisk zstd cpio dosfstools mtools xorriso erofs-utils grub-common grub-pc-bin grub-efi-amd64-bin ovmf openssh-client socat
# QEMU 7.2 comes with Debian 12's own qemu-utils: a newer qemu-utils installed from
# backports blocks it, so both are installed together (qemu-img stays).
QEMU_PACKAGES := qemu-system-x86 qemu-utils/bookworm

# `make run`: the VM's memory, where its disk and seed live, RUN_KEEP=1 to keep the disk.
RUN_MEM ?= 1024
RUN_DIR ?= .cache/run
RUN_KEEP ?=
RUN_ACCEL ?=

.PHONY: all deps build release fixtures images image run test test-full fuzz bench fmt lint clean

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
	$(CARGO) build --profile image -p image-build
	target/image/ros-image-build $(if $(VERSION),--image-version $(VERSION))

# Everything bootable: dist/vmlinuz, dist/initrd (ros as PID 1, busybox, modules), the
# system images as dist/images.sqfs, the disk images dist/ros-<ver>.raw and .qcow2 (GPT,
# GRUB for BIOS and UEFI, slots A and B, state), the live ISO dist/ros-<ver>.iso, and
# dist/manifest.json. VERSION=x.y.z sets the version. The binaries are built with the
# `image` profile (Cargo.toml: release without LTO, incremental): after a change to the Rust
# code only, this takes seconds to compile and about half a minute to assemble.
image: deps
	$(CARGO) build --profile image -p ros -p system-docker -p image-build
	target/image/ros-image-build $(if $(VERSION),--image-version $(VERSION))

# Boots ros in QEMU the way a user would: a copy of dist/ros-<ver>.qcow2 started by
# the firmware (GRUB, BIOS), the serial console on this terminal, SSH forwarded to
# 127.0.0.1:2222, and a NoCloud seed carrying your public key (~/.ssh/id_ed25519.pub or
# id_rsa.pub; one is generated in $(RUN_DIR) when you have none). Each run starts from the
# freshly built image; RUN_KEEP=1 keeps the disk (and its state) of the last run.
# Log in with `ssh -p 2222 rancher@127.0.0.1`; `sudo poweroff` ends the VM (or Ctrl-A X).
# KVM is used when it answers (a probe VM boots the kernel to its no-root panic within
# 15 s; nested KVM often does not), TCG otherwise; RUN_ACCEL=tcg or kvm skips the probe.
run: image
	@mkdir -p $(RUN_DIR)
	@ver=$$(jq -r .version dist/manifest.json); \
	if [ "$(RUN_KEEP)" != 1 ] || [ ! -f $(RUN_DIR)/disk.qcow2 ]; then cp dist/ros-$$ver.qcow2 $(RUN_DIR)/disk.qcow2; fi
	@key=$$(ls $$HOME/.ssh/id_ed25519.pub $$HOME/.ssh/id_rsa.pub 2>/dev/null | head -1); \
	if [ -z "$$key" ]; then key=$(RUN_DIR)/id_ed25519.pub; \
		[ -f $$key ] || ssh-keygen -q -t ed25519 -N '' -C ros-make-run -f $(RUN_DIR)/id_ed25519; \
		echo "run: ssh -i $(RUN_DIR)/id_ed25519 -p 2222 rancher@127.0.0.1"; \
	else echo "run: ssh -p 2222 rancher@127.0.0.1 (key $$key)"; fi; \
	rm -rf $(RUN_DIR)/seed && mkdir -p $(RUN_DIR)/seed && \
	printf '#cloud-config\nssh_authorized_keys:\n  - %s\n' "$$(cat $$key)" > $(RUN_DIR)/seed/user-data && \
	printf 'instance-id: ros-make-run\nlocal-hostname: ros\n' > $(RUN_DIR)/seed/meta-data && \
	xorriso -as mkisofs -quiet -J -R -V cidata -o $(RUN_DIR)/seed.iso $(RUN_DIR)/seed
	@accel=$(RUN_ACCEL); if [ -z "$$accel" ]; then accel=tcg; \
		if [ -w /dev/kvm ] && timeout 15 qemu-system-x86_64 -machine q35,accel=kvm -cpu host -m 128 -nodefaults \
			-display none -serial stdio -no-reboot -kernel dist/vmlinuz -append 'console=ttyS0 panic=-1' \
			2>/dev/null | grep -q 'Kernel panic'; then accel=kvm; fi; fi; \
	echo "run: accel=$$accel (RUN_ACCEL=kvm|tcg overrides the probe)"; \
	cpu=max; [ "$$accel" = kvm ] && cpu=host; \
	qemu-system-x86_64 -machine q35,accel=$$accel -cpu $$cpu -smp 2 -m $(RUN_MEM) -nographic -no-reboot \
		-drive file=$(RUN_DIR)/disk.qcow2,if=virtio,format=qcow2 \
		-drive file=$(RUN_DIR)/seed.iso,if=virtio,format=raw,readonly=on \
		-device virtio-rng-pci -nic user,model=virtio-net-pci,restrict=on,hostfwd=tcp:127.0.0.1:2222-:22

# The engine alone on this host, in the foreground on $(SOCK) (the issue-2 front door).
run-engine: deps release
	target/release/system-docker daemon -H unix://$(SOCK)

test: deps build fixtures image fuzz
	$(CARGO) test --workspace --no-fail-fast

# The same tests with full trial counts (tests read ROS_TEST_FULL), the fuzzer for longer.
test-full: deps build fixtures image
	$(MAKE) fuzz FUZZ_SECONDS=600
	ROS_TEST_FULL=1 $(CARGO) test --workspace --no-fail-fast

# The userdata fuzz target (cloud-config/fuzz, cargo-fuzz on the nightly toolchain): built,
# its corpus replayed, then FUZZ_RUNS inputs from a fixed seed (the same inputs every time,
# so a CI run cannot fail by luck), and FUZZ_SECONDS more with a random one when set
# (`make test-full`: 600). New inputs go to .cache/fuzz, crashes to
# cloud-config/fuzz/artifacts (and fail the target); add a crash to the corpus once fixed.
# cargo-fuzz is installed from the crate registry when missing.
FUZZ_RUNS ?= 40000
FUZZ_SECONDS ?=
fuzz:
	@command -v cargo-fuzz >/dev/null || $(CARGO) install --locked cargo-fuzz
	@rm -rf .cache/fuzz/userdata-seeded
	@mkdir -p .cache/fuzz/userdata .cache/fuzz/userdata-seeded
	cd cloud-config && $(CARGO) +nightly fuzz build userdata
	cd cloud-config && $(CARGO) +nightly fuzz run userdata ../.cache/fuzz/userdata fuzz/corpus/userdata -- -runs=0
	cd cloud-config && $(CARGO) +nightly fuzz run userdata ../.cache/fuzz/userdata-seeded fuzz/corpus/userdata -- -seed=1 -runs=$(FUZZ_RUNS)
	$(if $(FUZZ_SECONDS),cd cloud-config && $(CARGO) +nightly fuzz run userdata ../.cache/fuzz/userdata fuzz/corpus/userdata -- -max_total_time=$(FUZZ_SECONDS))

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
