#!/usr/bin/env bash
# Builds Hull's guest kernel for one architecture.
#
#   scripts/build-kernel.sh <arch> <outdir>      arch: x86_64 | aarch64 | ppc64le | s390x
#
# Writes <outdir>/{vmlinux,vmlinuz,kernel.config,kernel.release}; the kernel is built
# out of tree in <outdir>/kernel/. Environment:
#   KERNEL_SRC        kernel source tarball (default /usr/src/linux-source-6.12.tar.xz)
#   KERNEL_FEATURES   feature sets from kernel/configs/, comma-separated (debug,gpu)
#   KERNEL_FRAGMENTS  extra config fragments, comma-separated paths, merged last
#   KERNEL_SOURCE_DATE_EPOCH  build timestamp; default: the last commit touching the
#                     kernel's inputs, else SOURCE_DATE_EPOCH, else the tarball's mtime
#   HULL_CACHE        cache folder (default /var/cache/hull)
#   JOBS              parallel make jobs (default: nproc)
#   HULL_IMAGE        a built hull-image binary (default: cargo build --release)
#   CROSS_COMPILE     compiler prefix (default: Debian's <triplet>- for a foreign arch)
#
# The result is cached in $HULL_CACHE/kernel/<key>/, the key hashing everything that
# decides the bytes: the source tarball, the fragments used, the patches, the
# features, the arch, the compiler, the timestamp, this script and the config code.
# The unpacked, patched source stays in $HULL_CACHE/kernel-src/<hash>/.
# Two runs for the same <outdir> take turns (a lock in <outdir>).
set -euo pipefail

die() { echo "build-kernel: $*" >&2; exit 1; }
log() { echo "build-kernel: $*" >&2; }

[ $# -eq 2 ] || die "usage: scripts/build-kernel.sh <x86_64|aarch64|ppc64le|s390x> <outdir>"
ARCH_NAME=$1
OUT=$2
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
SELF=$REPO/scripts/build-kernel.sh
KERNEL_SRC=${KERNEL_SRC:-/usr/src/linux-source-6.12.tar.xz}
KERNEL_FEATURES=${KERNEL_FEATURES:-}
KERNEL_FRAGMENTS=${KERNEL_FRAGMENTS:-}
HULL_CACHE=${HULL_CACHE:-/var/cache/hull}
JOBS=${JOBS:-$(nproc)}
KBUILD_USER=hull
KBUILD_HOST=hull

# Per architecture: kbuild's ARCH, the fragment folder, Debian's cross prefix, the
# boot image target and where kbuild leaves it.
case $ARCH_NAME in
  x86_64)  KARCH=x86_64;  CONF_DIR=x86_64;  TRIPLET=x86_64-linux-gnu-
           TARGET=bzImage;  IMAGE=arch/x86/boot/bzImage ;;
  aarch64) KARCH=arm64;   CONF_DIR=arm64;   TRIPLET=aarch64-linux-gnu-
           TARGET=Image.gz; IMAGE=arch/arm64/boot/Image.gz ;;
  ppc64le) KARCH=powerpc; CONF_DIR=ppc64le; TRIPLET=powerpc64le-linux-gnu-
           TARGET=vmlinux;  IMAGE=vmlinux ;;
  s390x)   KARCH=s390;    CONF_DIR=s390x;   TRIPLET=s390x-linux-gnu-
           TARGET=bzImage;  IMAGE=arch/s390/boot/bzImage ;;
  *) die "unknown arch '$ARCH_NAME' (expected x86_64, aarch64, ppc64le or s390x)" ;;
esac
HOST_ARCH=$(uname -m)
if [ -z "${CROSS_COMPILE+set}" ]; then
  case $HOST_ARCH in
    "$ARCH_NAME") CROSS_COMPILE= ;;
    *) CROSS_COMPILE=$TRIPLET ;;
  esac
fi
command -v "${CROSS_COMPILE}gcc" >/dev/null ||
  die "${CROSS_COMPILE}gcc not found (install gcc-${TRIPLET%-}: run 'make deps')"
[ -f "$KERNEL_SRC" ] || die "KERNEL_SRC $KERNEL_SRC is not a file (expected a kernel tarball)"
[[ $JOBS =~ ^[1-9][0-9]*$ ]] || die "JOBS must be a positive number, not '$JOBS'"
mkdir -p "$HULL_CACHE/kernel" "$HULL_CACHE/kernel-src" ||
  die "cannot create the cache in $HULL_CACHE (set HULL_CACHE to a writable folder)"

sha() { sha256sum | cut -d' ' -f1; }

# Content hash of files, named relative to the repository (or absolute if outside).
hash_files() {
  local f
  for f in "$@"; do
    printf '%s %s\n' "${f#"$REPO"/}" "$(sha256sum <"$f" | cut -d' ' -f1)"
  done | sha
}

# Collects the fragment files this build merges, in the order hull-image merges
# them, into FRAGMENTS, and the extra ones (absolute paths) into EXTRA.
collect_fragments() {
  local dir feature f features extra
  FRAGMENTS=()
  EXTRA=()
  IFS=, read -ra features <<<"$KERNEL_FEATURES"
  for dir in common "$CONF_DIR" "${features[@]}"; do
    [ -n "$dir" ] || continue
    [ -d "$REPO/kernel/configs/$dir" ] ||
      die "unknown kernel feature set '$dir' (no folder kernel/configs/$dir)"
    mapfile -t -O "${#FRAGMENTS[@]}" FRAGMENTS < \
      <(find "$REPO/kernel/configs/$dir" -maxdepth 1 -type f | LC_ALL=C sort)
  done
  IFS=, read -ra extra <<<"$KERNEL_FRAGMENTS"
  for f in "${extra[@]}"; do
    [ -n "$f" ] || continue
    [ -f "$f" ] || die "KERNEL_FRAGMENTS: $f is not a file"
    EXTRA+=("$(realpath "$f")")
  done
  FRAGMENTS+=("${EXTRA[@]}")
}

# The build timestamp. A commit elsewhere in the tree must not change the kernel's
# bytes (or miss the cache), so the general SOURCE_DATE_EPOCH only counts outside a
# git checkout: KERNEL_SOURCE_DATE_EPOCH, else the last commit touching the kernel's
# inputs, else SOURCE_DATE_EPOCH, else the tarball's mtime.
build_epoch() {
  local t
  if [ -n "${KERNEL_SOURCE_DATE_EPOCH:-}" ]; then
    echo "$KERNEL_SOURCE_DATE_EPOCH"
  elif git -C "$REPO" rev-parse --git-dir >/dev/null 2>&1 &&
       t=$(git -C "$REPO" log -1 --format=%ct -- kernel scripts/build-kernel.sh \
           rootfs-builder/src/kernel_config 2>/dev/null) && [ -n "$t" ]; then
    echo "$t"
  elif [ -n "${SOURCE_DATE_EPOCH:-}" ]; then
    echo "$SOURCE_DATE_EPOCH"
  else
    stat -c %Y "$KERNEL_SRC"
  fi
}

# hull-image, built for the host unless HULL_IMAGE names one.
find_hull_image() {
  if [ -n "${HULL_IMAGE:-}" ]; then
    [ -x "$HULL_IMAGE" ] || die "HULL_IMAGE $HULL_IMAGE is not an executable"
    echo "$HULL_IMAGE"
    return
  fi
  local target=${CARGO_TARGET_DIR:-$REPO/target}
  (cd "$REPO" && cargo build --release -p hull-image --bin hull-image >&2) ||
    die "cannot build hull-image (cargo build --release -p hull-image)"
  echo "$target/release/hull-image"
}

# Unpacks the tarball and applies kernel/patches/<version>/ in order, once per
# tarball and patch set; prints the tree's path.
prepare_source() {
  local key=$1 tree="$HULL_CACHE/kernel-src/$1"
  if [ -f "$tree/.hull-complete" ]; then
    echo "$tree"
    return
  fi
  local tmp
  tmp=$(mktemp -d "$HULL_CACHE/kernel-src/.$key.XXXXXX")
  trap 'rm -rf "$tmp"' EXIT
  log "unpacking $KERNEL_SRC"
  tar -xf "$KERNEL_SRC" -C "$tmp" --strip-components=1 ||
    die "cannot unpack $KERNEL_SRC"
  [ -f "$tmp/Makefile" ] && [ -f "$tmp/Kconfig" ] ||
    die "$KERNEL_SRC does not hold a kernel source tree"
  apply_patches "$tmp"
  touch "$tmp/.hull-complete"
  mv -T "$tmp" "$tree" 2>/dev/null || rm -rf "$tmp" # another build won the race
  trap - EXIT
  echo "$tree"
}

apply_patches() {
  local tree=$1 version series patch
  version=$(sed -n 's/^VERSION = //p; s/^PATCHLEVEL = //p' "$tree/Makefile" | paste -sd.)
  series="$REPO/kernel/patches/$version"
  if [ ! -d "$series" ]; then
    log "no patch series kernel/patches/$version: building the source as is"
    return
  fi
  while IFS= read -r patch; do
    log "applying ${patch#"$REPO"/}"
    patch -d "$tree" -p1 --batch --forward --quiet <"$patch" >&2 ||
      die "patch ${patch#"$REPO"/} does not apply to $KERNEL_SRC (kernel $version)"
  done < <(find "$series" -maxdepth 1 -name '*.patch' -type f | LC_ALL=C sort)
}

# Copies a file into place under a temporary name first.
install_file() {
  cp "$1" "$2.tmp.$$" && mv -f "$2.tmp.$$" "$2"
}

# --- Inputs and the cache key -------------------------------------------------
collect_fragments
mapfile -t PATCHES < <(find "$REPO/kernel/patches" -type f 2>/dev/null | LC_ALL=C sort)
mapfile -t CONFIG_CODE < <(find "$REPO/rootfs-builder/src/kernel_config" -type f | LC_ALL=C sort)
EPOCH=$(build_epoch)
[[ $EPOCH =~ ^[0-9]+$ ]] || die "the build timestamp must be seconds since 1970, not '$EPOCH'"
TIMESTAMP=$(LC_ALL=C date -u -d "@$EPOCH" '+%a %b %e %H:%M:%S UTC %Y')
SRC_HASH=$(sha <"$KERNEL_SRC")
PATCH_HASH=$(hash_files "${PATCHES[@]}")
TREE_KEY=$(printf '%s\n%s\n' "$SRC_HASH" "$PATCH_HASH" | sha | cut -c1-24)
KEY=$(
  {
    echo "source $SRC_HASH"
    echo "patches $PATCH_HASH"
    echo "arch $ARCH_NAME features $KERNEL_FEATURES"
    echo "fragments $(hash_files "${FRAGMENTS[@]}")"
    echo "script $(hash_files "$SELF")"
    echo "config-code $(hash_files "${CONFIG_CODE[@]}")"
    echo "compiler $("${CROSS_COMPILE}gcc" --version | head -1)"
    echo "build $TIMESTAMP $KBUILD_USER $KBUILD_HOST"
  } | sha | cut -c1-32
)
CACHED="$HULL_CACHE/kernel/$KEY"
OUTPUTS=(vmlinux vmlinuz kernel.config kernel.release)
mkdir -p "$OUT"
exec 9>"$OUT/.build-kernel.lock"
if ! flock -n 9; then
  log "waiting for another kernel build in $OUT"
  flock 9
fi

# --- Cache hit: copy ----------------------------------------------------------
if [ -f "$CACHED/.hull-complete" ]; then
  for f in "${OUTPUTS[@]}"; do install_file "$CACHED/$f" "$OUT/$f"; done
  log "kernel $(cat "$OUT/kernel.release") for $ARCH_NAME from the cache ($CACHED)"
  exit 0
fi

# --- Configure, verify, build -------------------------------------------------
HULL_IMAGE_BIN=$(find_hull_image)
TREE=$(prepare_source "$TREE_KEY")
BUILD_DIR=$(realpath "$OUT")/kernel
config_args=(--arch "$ARCH_NAME" --source "$TREE" --build-dir "$BUILD_DIR"
             --configs "$REPO/kernel/configs")
[ -z "$KERNEL_FEATURES" ] || config_args+=(--features "$KERNEL_FEATURES")
[ ${#EXTRA[@]} -eq 0 ] || config_args+=(--fragments "$(IFS=,; echo "${EXTRA[*]}")")
[ -z "$CROSS_COMPILE" ] || config_args+=(--cross-compile "$CROSS_COMPILE")
"$HULL_IMAGE_BIN" kernel-config "${config_args[@]}"

log "building $TARGET for $ARCH_NAME with $JOBS jobs in $BUILD_DIR"
make -C "$TREE" O="$BUILD_DIR" ARCH="$KARCH" CROSS_COMPILE="$CROSS_COMPILE" \
  -j"$JOBS" KBUILD_BUILD_TIMESTAMP="$TIMESTAMP" KBUILD_BUILD_USER="$KBUILD_USER" \
  KBUILD_BUILD_HOST="$KBUILD_HOST" KBUILD_BUILD_VERSION=1 \
  vmlinux "$TARGET" || die "kernel build failed (see the make output above)"
RELEASE=$(make -s -C "$TREE" O="$BUILD_DIR" ARCH="$KARCH" CROSS_COMPILE="$CROSS_COMPILE" \
  kernelrelease)

# --- Store in the cache, then copy out ----------------------------------------
STAGE=$(mktemp -d "$HULL_CACHE/kernel/.$KEY.XXXXXX")
trap 'rm -rf "$STAGE"' EXIT
cp "$BUILD_DIR/vmlinux" "$STAGE/vmlinux"
cp "$BUILD_DIR/$IMAGE" "$STAGE/vmlinuz"
cp "$BUILD_DIR/.config" "$STAGE/kernel.config"
echo "$RELEASE" >"$STAGE/kernel.release"
touch "$STAGE/.hull-complete"
rm -rf "$CACHED"
mv -T "$STAGE" "$CACHED"
trap - EXIT
for f in "${OUTPUTS[@]}"; do install_file "$CACHED/$f" "$OUT/$f"; done
log "kernel $RELEASE for $ARCH_NAME: $(stat -c %s "$OUT/vmlinuz") bytes ($OUT/vmlinuz)"
