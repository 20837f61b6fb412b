#!/usr/bin/env bash
# Idempotent, cached set-up of what the profiling tests need on a Debian 12 (bookworm) x86_64 host:
#   * Debian packages: openssh-server (loopback sshd for the SSH runner test), qemu-user (the dynamic
#     qemu-aarch64, the only build that loads TCG plugins), gcc (builds the counting plugin);
#   * an aarch64 Python 3.11 sysroot: Debian arm64 .debs fetched with an isolated apt configuration
#     (the host's dpkg architectures are not touched) and unpacked with dpkg-deb -x;
#   * the real PyPI aarch64 wheels of onnxruntime, ai-edge-litert and numpy, cross-installed with
#     pip --platform ... --only-binary=:all: --target;
#   * libinsncount.so: a per-guest-thread instruction-count TCG plugin (Debian ships none);
#   * .venv-optimum, the side venv with optimum for tests/test_optimum_bundle.py (scripts/setup-optimum-venv.sh;
#     built first, and a failure there only prints a message: the rest does not depend on it).
# Everything lands under $EDGEPRUNE_AARCH64_CACHE (default: <repo>/.cache/aarch64, gitignored).
# Run as root (apt); a second run finds everything cached and takes about a second.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
CACHE=${EDGEPRUNE_AARCH64_CACHE:-$ROOT/.cache/aarch64}
ORT_VERSION=1.32.0
LITERT_VERSION=2.3.0
NUMPY_VERSION=2.4.6
SUITE=bookworm
ARM_DEBS="python3.11-minimal libpython3.11-minimal libpython3.11-stdlib libc6 libgcc-s1 libstdc++6 zlib1g
libexpat1 libffi8 libssl3 libbz2-1.0 liblzma5 libsqlite3-0 libncursesw6 libtinfo6 libreadline8 libuuid1 libnsl2
libtirpc3 libdb5.3 libgssapi-krb5-2 libkrb5-3 libk5crypto3 libkrb5support0 libcom-err2 libkeyutils1 libcrypt1
media-types"

say() { echo "setup-test-system: $*" >&2; }
die() { say "ERROR: $*"; exit 1; }

# 0. optimum side venv (no root needed) ------------------------------------------------------------
bash "$ROOT/scripts/setup-optimum-venv.sh" \
    || say "optimum venv set-up failed: tests/test_optimum_bundle.py will fail and say why; continuing"

mkdir -p "$CACHE"
exec 9>"$CACHE/.lock"
flock 9   # one set-up at a time (parallel make / two checkouts sharing a cache)

# 1. Debian packages on the host ---------------------------------------------------------------
need=()
[ -x /usr/sbin/sshd ] || need+=(openssh-server)
command -v qemu-aarch64 >/dev/null || need+=(qemu-user)
command -v gcc >/dev/null || need+=(gcc libc6-dev)
command -v ssh >/dev/null || need+=(openssh-client)
command -v dpkg-deb >/dev/null || die "dpkg-deb not found: this script needs a Debian/Ubuntu host"
if [ ${#need[@]} -gt 0 ]; then
    [ "$(id -u)" = 0 ] || die "missing ${need[*]}; run this script as root (it uses apt-get)"
    command -v apt-get >/dev/null || die "missing ${need[*]} and no apt-get; install them by hand"
    say "apt-get install ${need[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get -o DPkg::Lock::Timeout=300 update -qq || die "apt-get update failed"
    apt-get -o DPkg::Lock::Timeout=300 install -y -qq --no-install-recommends "${need[@]}" >/dev/null \
        || die "apt-get install ${need[*]} failed"
fi

# 2. aarch64 Python sysroot from Debian arm64 packages ------------------------------------------
if [ ! -x "$CACHE/sysroot/usr/bin/python3.11" ]; then
    say "fetching the Debian $SUITE arm64 python3.11 sysroot"
    work=$(mktemp -d "$CACHE/.apt.XXXXXX")
    trap 'rm -rf "$work"' EXIT
    mkdir -p "$work/lists/partial" "$work/cache/archives/partial" "$work/debs" "$work/sysroot"
    touch "$work/status"
    key=/usr/share/keyrings/debian-archive-keyring.gpg
    [ -f "$key" ] || die "$key not found (package debian-archive-keyring)"
    {
        echo "deb [arch=arm64 signed-by=$key] http://deb.debian.org/debian $SUITE main"
        echo "deb [arch=arm64 signed-by=$key] http://deb.debian.org/debian $SUITE-updates main"
        echo "deb [arch=arm64 signed-by=$key] http://deb.debian.org/debian-security $SUITE-security main"
    } > "$work/sources.list"
    apt_opts=(-o APT::Architecture=arm64 -o APT::Architectures=arm64 -o "Dir::State::Lists=$work/lists"
              -o "Dir::Cache=$work/cache" -o "Dir::State::status=$work/status"
              -o "Dir::Etc::SourceList=$work/sources.list" -o Dir::Etc::SourceParts=/nonexistent
              -o Debug::NoLocking=1 -o APT::Sandbox::User=root)
    apt-get "${apt_opts[@]}" update -qq >/dev/null || die "apt-get update (isolated arm64 lists) failed"
    # shellcheck disable=SC2086
    (cd "$work/debs" && apt-get "${apt_opts[@]}" download $ARM_DEBS >/dev/null) \
        || die "apt-get download of the arm64 python packages failed"
    for d in "$work"/debs/*.deb; do dpkg-deb -x "$d" "$work/sysroot"; done
    [ -x "$work/sysroot/usr/bin/python3.11" ] || die "the arm64 sysroot has no usr/bin/python3.11"
    rm -rf "$CACHE/sysroot"
    mv "$work/sysroot" "$CACHE/sysroot"
    rm -rf "$work"
    trap - EXIT
fi

# 3. Real aarch64 wheels, cross-installed ---------------------------------------------------------
site_stamp="$CACHE/site/.edgeprune-ort$ORT_VERSION-litert$LITERT_VERSION-numpy$NUMPY_VERSION"
if [ ! -f "$site_stamp" ]; then
    say "cross-installing aarch64 wheels: onnxruntime $ORT_VERSION, ai-edge-litert $LITERT_VERSION"
    if [ -x "$ROOT/.venv/bin/python" ]; then PY="$ROOT/.venv/bin/python"; else PY=python3; fi
    "$PY" -m pip --version >/dev/null 2>&1 || die "$PY has no pip; create the venv first (make env)"
    tmp=$(mktemp -d "$CACHE/.site.XXXXXX")
    "$PY" -m pip install -q --disable-pip-version-check --no-compile --target "$tmp" --only-binary=:all: \
        --python-version 3.11 --implementation cp --platform manylinux2014_aarch64 \
        --platform manylinux_2_27_aarch64 --platform manylinux_2_28_aarch64 \
        "onnxruntime==$ORT_VERSION" "ai-edge-litert==$LITERT_VERSION" "numpy==$NUMPY_VERSION" 2>"$tmp.log" \
        || { cat "$tmp.log" >&2; rm -rf "$tmp" "$tmp.log"; die "pip could not fetch the aarch64 wheels"; }
    rm -f "$tmp.log"
    touch "$tmp/$(basename "$site_stamp")"
    rm -rf "$CACHE/site"
    mv "$tmp" "$CACHE/site"
fi

# 4. Instruction-count TCG plugin ----------------------------------------------------------------
# QEMU 7.2 plugin API v1; declares by hand the few calls it uses (no qemu headers are packaged).
# The guest brackets a region with syscall(4095, 1) ... syscall(4095, 0) (an unused number, ENOSYS);
# the instructions executed by the marking thread inside all regions are printed at exit.
if [ ! -f "$CACHE/libinsncount.so" ] || [ "$0" -nt "$CACHE/libinsncount.so" ]; then
    say "building the TCG instruction-count plugin"
    cat > "$CACHE/insncount.c" <<'EOF'
#include <stdint.h>
#include <stdio.h>
#include <stdbool.h>
#include <stddef.h>
typedef uint64_t qemu_plugin_id_t;
struct qemu_plugin_tb;
typedef struct { const char *target_name; struct { int min; int cur; } version;
                 bool system_emulation; union { struct { int smp_vcpus; int max_vcpus; } system; }; } qemu_info_t;
enum qemu_plugin_cb_flags { QEMU_PLUGIN_CB_NO_REGS, QEMU_PLUGIN_CB_R_REGS, QEMU_PLUGIN_CB_RW_REGS };
typedef void (*trans_cb)(qemu_plugin_id_t, struct qemu_plugin_tb *);
typedef void (*udata_cb)(qemu_plugin_id_t, void *);
typedef void (*vcpu_udata_cb)(unsigned int, void *);
typedef void (*syscall_cb)(qemu_plugin_id_t, unsigned int, int64_t, uint64_t, uint64_t, uint64_t,
                           uint64_t, uint64_t, uint64_t, uint64_t, uint64_t);
void qemu_plugin_register_vcpu_tb_trans_cb(qemu_plugin_id_t, trans_cb);
void qemu_plugin_register_vcpu_tb_exec_cb(struct qemu_plugin_tb *, vcpu_udata_cb, enum qemu_plugin_cb_flags, void *);
size_t qemu_plugin_tb_n_insns(const struct qemu_plugin_tb *);
void qemu_plugin_register_atexit_cb(qemu_plugin_id_t, udata_cb, void *);
void qemu_plugin_register_vcpu_syscall_cb(qemu_plugin_id_t, syscall_cb);
void qemu_plugin_outs(const char *);
__attribute__((visibility("default"))) int qemu_plugin_version = 1;

#define MAXV 4096
static uint64_t per_vcpu[MAXV], start_at[MAXV], region_total, nregions;
static void on_exec(unsigned int vcpu, void *ud) { if (vcpu < MAXV) per_vcpu[vcpu] += (uintptr_t)ud; }
static void on_trans(qemu_plugin_id_t id, struct qemu_plugin_tb *tb) {
    qemu_plugin_register_vcpu_tb_exec_cb(tb, on_exec, QEMU_PLUGIN_CB_NO_REGS,
                                         (void *)(uintptr_t)qemu_plugin_tb_n_insns(tb));
}
static void on_syscall(qemu_plugin_id_t id, unsigned int vcpu, int64_t num, uint64_t a1, uint64_t a2,
                       uint64_t a3, uint64_t a4, uint64_t a5, uint64_t a6, uint64_t a7, uint64_t a8) {
    if (num != 4095 || vcpu >= MAXV) return;
    if (a1 == 1) start_at[vcpu] = per_vcpu[vcpu];
    else { region_total += per_vcpu[vcpu] - start_at[vcpu]; nregions++; }
}
static void on_exit_cb(qemu_plugin_id_t id, void *p) {
    char buf[160];
    snprintf(buf, sizeof buf, "edgeprune-insncount regions=%llu instructions=%llu\n",
             (unsigned long long)nregions, (unsigned long long)region_total);
    qemu_plugin_outs(buf);
}
__attribute__((visibility("default")))
int qemu_plugin_install(qemu_plugin_id_t id, const qemu_info_t *info, int argc, char **argv) {
    qemu_plugin_register_vcpu_tb_trans_cb(id, on_trans);
    qemu_plugin_register_vcpu_syscall_cb(id, on_syscall);
    qemu_plugin_register_atexit_cb(id, on_exit_cb, NULL);
    return 0;
}
EOF
    gcc -O2 -shared -fPIC -fvisibility=hidden -o "$CACHE/libinsncount.so.tmp" "$CACHE/insncount.c" \
        || die "gcc could not build the plugin"
    mv "$CACHE/libinsncount.so.tmp" "$CACHE/libinsncount.so"
fi

# 5. Smoke check: the emulated interpreter starts and imports both runtimes -----------------------
if [ ! -f "$CACHE/.smoke-ok" ] || [ "$site_stamp" -nt "$CACHE/.smoke-ok" ]; then
    mkdir -p "$CACHE/smoke/proc"
    printf 'processor\t: 0\nFeatures\t: fp asimd evtstrm crc32 cpuid\nCPU implementer\t: 0x41\nCPU architecture: 8\nCPU variant\t: 0x0\nCPU part\t: 0xd08\nCPU revision\t: 3\n\n' \
        > "$CACHE/smoke/proc/cpuinfo"
    for e in usr lib etc; do ln -sfn "$CACHE/sysroot/$e" "$CACHE/smoke/$e"; done
    out=$(env -i PATH=/usr/bin:/bin PYTHONPATH="$CACHE/site" PYTHONNOUSERSITE=1 \
          qemu-aarch64 -L "$CACHE/smoke" -cpu cortex-a72 "$CACHE/sysroot/usr/bin/python3.11" -c \
          'import platform, onnxruntime, ai_edge_litert.interpreter; print(platform.machine(), onnxruntime.__version__)' 2>&1) \
        || die "emulated aarch64 python failed: $out"
    [ "$out" = "aarch64 $ORT_VERSION" ] || die "unexpected smoke output: $out"
    touch "$CACHE/.smoke-ok"
fi
say "ok ($CACHE)"
