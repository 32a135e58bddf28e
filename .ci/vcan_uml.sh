#!/usr/bin/env bash
# vcan_uml.sh -- charger-sim's recipe for a REAL SocketCAN vcan0 on machines whose kernel has none.
#
# Runs CMD inside a throw-away User-Mode-Linux kernel (Debian package user-mode-linux: a Linux 6.1
# kernel with vcan, can-raw, can-bcm, can-gw and j1939 that runs as an ordinary process -- no
# /dev/kvm, no modprobe, no root kernel modules on the host) with vcan0 up. The guest's root fs is
# the HOST's / (read-only, with a throw-away tmpfs layer on top) and the current directory is
# mounted read-write at the same path, so CMD uses exactly the host's python, venv and pytest.
# Boot + run + shutdown takes ~2-3 s; Python starts a few times slower inside.
#
# Usage:  bash .ci/vcan_uml.sh [--setup | --check] [--] CMD [ARGS...]
#         bash .ci/vcan_uml.sh python -m pytest -m socketcan
#   --setup  only install what is needed (as root: apt-get install user-mode-linux busybox-static)
#   --check  only say whether everything is installed (exit 0) or not (125); installs nothing
# (python -m pytest runs the socketcan tier through this script when there is no vcan0: tests/conftest.py)
# Exit:   CMD's exit status; 124 = timed out; 125 = UML/setup failure.
# Env:    VCAN_VM_IFACES  (default "vcan0")   VCAN_VM_TIMEOUT (s, default 900)
#         VCAN_VM_MEM     (MiB, default 1024) VCAN_VM_VERBOSE=1 shows kernel messages
# Inside, the command runs as root (so tests may 'ip link set vcan0 down'); CHARGER_SIM_VCAN_VM=uml
# is set so tests can tell where they run.
set -euo pipefail
SETUP_ONLY=0; CHECK_ONLY=0
while [[ $# -gt 0 ]]; do
  case $1 in --setup) SETUP_ONLY=1; shift;; --check) CHECK_ONLY=1; shift;; --) shift; break;; *) break;; esac
done
[[ $SETUP_ONLY = 1 || $CHECK_ONLY = 1 || $# -gt 0 ]] || { sed -n '2,21p' "$0"; exit 125; }
IFACES=${VCAN_VM_IFACES:-vcan0}; TMO=${VCAN_VM_TIMEOUT:-900}; MEM=${VCAN_VM_MEM:-1024}
log() { echo "vcan_uml: $*" >&2; }
die() { log "$*"; exit 125; }

need=()
command -v linux.uml >/dev/null || need+=(user-mode-linux)
[[ -x /bin/busybox ]] || need+=(busybox-static)
if ((${#need[@]})); then
  [[ $CHECK_ONLY = 1 ]] && die "not installed: ${need[*]} (as root: bash $0 --setup)"
  [[ $(id -u) = 0 ]] || die "please install: ${need[*]}"
  log "installing ${need[*]}"; export DEBIAN_FRONTEND=noninteractive
  { apt-get install -y -q --no-install-recommends "${need[@]}" ||
    { apt-get update -q && apt-get install -y -q --no-install-recommends "${need[@]}"; }; } >/dev/null 2>&1 ||
    die "apt-get install ${need[*]} failed"
fi
KVER=$(linux.uml --version 2>/dev/null | tail -1 | tr -d '[:space:]')
MODS=/usr/lib/uml/modules/$KVER/kernel
[[ -f $MODS/drivers/net/can/vcan.ko ]] || die "no vcan.ko under $MODS"
[[ $CHECK_ONLY = 1 ]] && exit 0
[[ $SETUP_ONLY = 1 ]] && { log "ready (UML $KVER)"; exit 0; }

IO=$(mktemp -d "${TMPDIR:-/tmp}/vcan-uml-io.XXXXXX"); trap 'rm -rf "$IO"' EXIT
CWD=$(pwd -P)
{ echo '#!/bin/bash'
  export -p | grep -vE '^declare -x (BASHOPTS|SHELLOPTS|BASH_[A-Z_]*|PWD|OLDPWD|SHLVL|_)='
  echo 'export CHARGER_SIM_VCAN_VM=uml'
  printf 'cd %q || exit 125\n' "$CWD"
  printf '%q ' "$@"; echo; } >"$IO/cmd.sh"
TTY=0; [[ -t 1 ]] && TTY=1
cat >"$IO/init" <<INIT
#!/bin/bash
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
fail() { echo "vcan_uml(guest): \$*"; /bin/busybox poweroff -f; }
mount -t proc proc /proc; mount -t sysfs sys /sys
mount -t tmpfs -o mode=755 tmpfs /run && mkdir -p /run/vm/u /run/vm/w /run/vm/r
for m in fs/overlayfs/overlay net/can/can net/can/can-raw net/can/can-bcm net/can/can-gw \\
         drivers/net/can/dev/can-dev drivers/net/can/vcan drivers/net/can/vxcan; do
  /bin/busybox insmod $MODS/\$m.ko || fail "insmod \$m failed"; done
/bin/busybox insmod $MODS/net/can/j1939/can-j1939.ko 2>/dev/null  # optional (UML has no can-isotp)
ip link set lo up
for i in $IFACES; do ip link add dev \$i type vcan && ip link set \$i up || fail "cannot create \$i"; done
R=/run/vm/r
mount -t overlay overlay -o lowerdir=/,upperdir=/run/vm/u,workdir=/run/vm/w \$R || fail "overlay failed"
mount -t proc proc \$R/proc; mount -t sysfs sys \$R/sys; mount -t devtmpfs dev \$R/dev
mkdir -p \$R/dev/pts \$R/dev/shm; mount -t devpts devpts \$R/dev/pts; mount -t tmpfs tmpfs \$R/dev/shm
mount -t hostfs none "\$R$CWD" -o "$CWD" || fail "hostfs mount of $CWD failed"
mount -t hostfs none "\$R$IO" -o "$IO" || fail "hostfs mount of $IO failed"
if [ $TTY = 1 ]; then
  chroot \$R /bin/bash "$IO/cmd.sh" </dev/null 2>&1; echo \$? >"\$R$IO/rc"
else  # host stdout is not a terminal: give the command a pipe too (no colours, like CI)
  { chroot \$R /bin/bash "$IO/cmd.sh" </dev/null 2>&1; echo \$? >"\$R$IO/rc"; } | cat
fi
sync; /bin/busybox poweroff -f
INIT
chmod +x "$IO/init"
if [[ ${VCAN_VM_VERBOSE:-0} = 1 ]]; then KLOG=loglevel=7; else KLOG="quiet loglevel=0"; fi
set +e
if [[ ${VCAN_VM_VERBOSE:-0} = 1 ]]; then
  timeout -k 10 "$TMO" linux.uml mem=${MEM}M root=/dev/root rootfstype=hostfs rootflags=/ ro \
    init="$IO/init" con0=null,fd:1 con=null $KLOG </dev/null
else  # drop UML's unconditional early boot chatter (printed before the command's output starts)
  timeout -k 10 "$TMO" linux.uml mem=${MEM}M root=/dev/root rootfstype=hostfs rootflags=/ ro \
    init="$IO/init" con0=null,fd:1 con=null $KLOG </dev/null |
    grep --line-buffered -vE '^(SELinux: |mmapper_init - find_iomem failed|Failed to initialize ubd device 0 :|reboot: System halted)'
fi
Q=${PIPESTATUS[0]}
set -e
[[ -f $IO/rc ]] && exit "$(cat "$IO/rc")"
[[ $Q = 124 || $Q = 137 ]] && { log "timed out after ${TMO}s"; exit 124; }
die "UML ended without a result (rc=$Q)"
