#!/usr/bin/env bash
# Installs what Hull's build and tests need on Debian or Ubuntu; on any other
# distribution it lists what is missing and stops.
#
#   scripts/deps.sh           install what is missing (root, apt)
#   scripts/deps.sh --check   only report what is missing; exit 1 if anything is
#
# Idempotent: when everything is present it only looks, and takes seconds.
set -euo pipefail

VHOST_DEVICE_VSOCK_VERSION=0.3.0
VIRTIOFSD_VERSION=1.14.0
RUST_TARGETS=(x86_64-unknown-linux-musl aarch64-unknown-linux-musl
              powerpc64le-unknown-linux-gnu s390x-unknown-linux-gnu)

# group  tool-or-file  package  [backports]
# Groups: build (kernel, agent, images), cross (building for another arch),
# test (boot and end-to-end tests), qemu-<arch> (the emulator for one arch).
# A leading "/" names a file that must exist; anything else is a command on PATH.
REQUIREMENTS=(
  "build make make"
  "build gcc build-essential"
  "build bc bc"
  "build bison bison"
  "build flex flex"
  "build /usr/include/libelf.h libelf-dev"
  "build /usr/include/openssl/ssl.h libssl-dev"
  "build perl perl"
  "build python3 python3"
  "build xz xz-utils"
  "build zstd zstd"
  "build gzip gzip"
  "build cpio cpio"
  "build kmod kmod"
  "build mkfs.ext4 e2fsprogs"
  "build mkfs.erofs erofs-utils"
  "build veritysetup cryptsetup-bin"
  "build /bin/busybox busybox-static"
  "build /usr/src/linux-source-6.12.tar.xz linux-source-6.12"
  "cross aarch64-linux-gnu-gcc gcc-aarch64-linux-gnu"
  "cross powerpc64le-linux-gnu-gcc gcc-powerpc64le-linux-gnu"
  "cross /usr/powerpc64le-linux-gnu/lib/libc.a libc6-dev-ppc64el-cross"
  "cross s390x-linux-gnu-gcc gcc-s390x-linux-gnu"
  "cross /usr/s390x-linux-gnu/lib/libc.a libc6-dev-s390x-cross"
  "qemu-x86_64 qemu-system-x86_64 qemu-system-x86 backports"
  "qemu-aarch64 qemu-system-aarch64 qemu-system-arm backports"
  "qemu-ppc64le qemu-system-ppc64 qemu-system-ppc backports"
  "qemu-s390x qemu-system-s390x qemu-system-misc backports"
  "test sfdisk fdisk"
  "test unshare util-linux"
  "test ip iproute2"
  "test containerd containerd"
  "test pkg-config pkg-config"
  "test /usr/include/seccomp.h libseccomp-dev"
  "test /usr/include/cap-ng.h libcap-ng-dev"
)

check_only=0
groups="build cross test qemu-x86_64 qemu-aarch64 qemu-ppc64le qemu-s390x"
while (($#)); do
  case $1 in
    --check) check_only=1 ;;
    --for) groups=${2//,/ }; shift ;;
    *) echo "usage: $0 [--check] [--for GROUP,...]" >&2; exit 2 ;;
  esac
  shift
done
wants() { [[ " $groups " == *" $1 "* ]]; }
# A kernel source given by the user replaces Debian's package.
if [[ -n ${KERNEL_SRC:-} && ${KERNEL_SRC} != /usr/src/linux-source-6.12.tar.xz ]]; then
  skip_kernel_source=1
fi

cargo_home=${CARGO_HOME:-$HOME/.cargo}
export PATH="$cargo_home/bin:$PATH"

present() {
  case $1 in
    /*) [[ -e $1 ]] ;;
    *) command -v "$1" >/dev/null 2>&1 ;;
  esac
}

missing_pkgs=()
missing_bpo=()
missing_what=()
for req in "${REQUIREMENTS[@]}"; do
  read -r group what pkg bpo <<<"$req"
  wants "$group" || continue
  [[ $pkg == linux-source-6.12 && -n ${skip_kernel_source:-} ]] && continue
  present "$what" && continue
  missing_what+=("$what (package $pkg)")
  if [[ -n ${bpo:-} ]]; then missing_bpo+=("$pkg"); else missing_pkgs+=("$pkg"); fi
done

missing_targets=()
if command -v rustup >/dev/null 2>&1; then
  installed=$(rustup target list --installed 2>/dev/null || true)
  for t in "${RUST_TARGETS[@]}"; do
    grep -qx "$t" <<<"$installed" || missing_targets+=("$t")
  done
else
  missing_targets=("${RUST_TARGETS[@]}")
fi

# A static busybox for each foreign guest architecture (container root filesystems
# in the arch matrix), fetched from Debian's archive with apt, using private
# package lists so that the host's apt configuration is left alone.
HULL_CACHE=${HULL_CACHE:-/var/cache/hull}
missing_busybox=()
for arch in aarch64 ppc64le s390x; do
  wants "qemu-$arch" || continue
  [[ $arch == "$(uname -m)" ]] && continue
  [[ -x $HULL_CACHE/busybox/$arch/busybox ]] || missing_busybox+=("$arch")
done

debian_arch() {
  case $1 in aarch64) echo arm64 ;; ppc64le) echo ppc64el ;; *) echo "$1" ;; esac
}

fetch_busybox() {
  local arch=$1 darch work
  darch=$(debian_arch "$arch")
  work=$(mktemp -d)
  trap 'rm -rf "$work"' RETURN
  mkdir -p "$work/lists/partial" "$work/cache/archives/partial"
  local apt=(-q -o "APT::Architecture=$darch" -o "APT::Architectures::=$darch"
             -o "Dir::State::Lists=$work/lists" -o "Dir::Cache=$work/cache"
             -o Dir::State::status=/dev/null -o APT::Sandbox::User=root)
  apt-get "${apt[@]}" update >/dev/null
  (cd "$work" && apt-get "${apt[@]}" download "busybox-static:$darch" >/dev/null)
  dpkg-deb -x "$work"/busybox-static_*.deb "$work/root"
  mkdir -p "$HULL_CACHE/busybox/$arch"
  install -m 0755 "$work/root/bin/busybox" "$HULL_CACHE/busybox/$arch/busybox.tmp"
  mv "$HULL_CACHE/busybox/$arch/busybox.tmp" "$HULL_CACHE/busybox/$arch/busybox"
}

missing_crates=()
wants test || { VHOST_DEVICE_VSOCK_VERSION=; VIRTIOFSD_VERSION=; }
vsock_bin="$cargo_home/bin/vhost-device-vsock"
if [[ -n $VHOST_DEVICE_VSOCK_VERSION ]] &&
   ! "$vsock_bin" --version 2>/dev/null | grep -q "$VHOST_DEVICE_VSOCK_VERSION"; then
  missing_crates+=("vhost-device-vsock@$VHOST_DEVICE_VSOCK_VERSION")
fi
if [[ -n $VIRTIOFSD_VERSION ]] &&
   ! "$cargo_home/bin/virtiofsd" --version 2>/dev/null | grep -q "$VIRTIOFSD_VERSION"; then
  missing_crates+=("virtiofsd@$VIRTIOFSD_VERSION")
fi

report() {
  local w
  for w in "${missing_what[@]}"; do echo "missing: $w"; done
  ((${#missing_bpo[@]})) && echo "(from bookworm-backports on Debian 12: ${missing_bpo[*]})"
  ((${#missing_targets[@]})) && echo "missing rustup targets: ${missing_targets[*]}"
  ((${#missing_crates[@]})) && echo "missing cargo tools (cargo install --locked): ${missing_crates[*]}"
  ((${#missing_busybox[@]})) && echo "missing static busybox for guests: ${missing_busybox[*]} (in $HULL_CACHE/busybox)"
  true
}

total=$(( ${#missing_pkgs[@]} + ${#missing_bpo[@]} + ${#missing_targets[@]} + ${#missing_crates[@]}
         + ${#missing_busybox[@]} ))
if ((total == 0)); then
  echo "deps: everything is present"
  exit 0
fi

if ((check_only)); then
  report >&2
  echo "deps: run 'make deps' (as root) to install them" >&2
  exit 1
fi

if ! command -v apt-get >/dev/null 2>&1 && (( ${#missing_pkgs[@]} + ${#missing_bpo[@]} )); then
  report >&2
  echo "deps: this is not a Debian-like system; install the equivalents of the above by hand" >&2
  exit 1
fi

if (( ${#missing_pkgs[@]} + ${#missing_bpo[@]} )); then
  [[ $(id -u) == 0 ]] || { report >&2; echo "deps: installing packages needs root" >&2; exit 1; }
  . /etc/os-release
  if ((${#missing_bpo[@]})) && [[ ${ID:-} == debian ]]; then
    # The stock QEMU conflicts with the qemu-utils some images ship from backports;
    # take QEMU from backports too.
    bpo=/etc/apt/sources.list.d/hull-backports.list
    [[ -e $bpo ]] || echo "deb http://deb.debian.org/debian ${VERSION_CODENAME}-backports main" >"$bpo"
  fi
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  if ((${#missing_pkgs[@]})); then
    apt-get install -y -qq --no-install-recommends "${missing_pkgs[@]}"
  fi
  if ((${#missing_bpo[@]})); then
    if [[ ${ID:-} == debian ]]; then
      apt-get install -y -qq --no-install-recommends -t "${VERSION_CODENAME}-backports" "${missing_bpo[@]}"
    else
      apt-get install -y -qq --no-install-recommends "${missing_bpo[@]}"
    fi
  fi
fi

if ((${#missing_targets[@]})); then
  rustup target add "${missing_targets[@]}"
fi

for crate in "${missing_crates[@]}"; do
  cargo install --quiet --locked --force "${crate%@*}" --version "${crate#*@}"
done

for arch in "${missing_busybox[@]}"; do
  fetch_busybox "$arch"
done

echo "deps: installed what was missing"
