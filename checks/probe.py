"""The probe: one POSIX sh script, sent in ONE exec per node, that prints framed sections for the parsers.

Frames carry a per-run nonce so that no tool output can forge a section boundary. Vendor sections run only when the
PCI scan or PATH shows the vendor; every tool call is wrapped in `timeout` when the node has it, so one hung tool
costs its own section, not the audit. The script reads only; it never installs, writes or starts anything.
"""

from __future__ import annotations

import ipaddress
import re
import secrets
from dataclasses import dataclass

from .vendors import probe_blocks, probe_path_dirs, probe_paths, probe_tools

PROBE_VERSION = 5

# Sections are printed as:  @@PF:<nonce>:BEGIN <name>@@  ...output...  @@PF:<nonce>:END <name> <rc>@@
PROBE_SCRIPT = r"""
PF_NONCE="$1"; PF_TOOL_TIMEOUT="${2:-20}"; PF_SERVER="${3:--}"
export LC_ALL=C LANG=C
PATH="$PATH:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin:__VENDOR_PATH__"
export PATH
if command -v timeout >/dev/null 2>&1; then PF_T="timeout -k 2 $PF_TOOL_TIMEOUT"; else PF_T=""; fi
pf_begin() { printf '\n@@PF:%s:BEGIN %s@@\n' "$PF_NONCE" "$1"; }
pf_end() { printf '\n@@PF:%s:END %s %s@@\n' "$PF_NONCE" "$1" "$2"; }
pf_run() { pf_name="$1"; shift; pf_begin "$pf_name"; $PF_T "$@" </dev/null 2>&1; pf_rc=$?; pf_end "$pf_name" "$pf_rc"; }
pf_cat() { pf_begin "$1"; if [ -r "$2" ]; then cat "$2" 2>&1; pf_rc=$?; else echo "cannot read $2"; pf_rc=126; fi; pf_end "$1" "$pf_rc"; }
pf_has() { command -v "$1" >/dev/null 2>&1; }
# Proxy URLs may carry credentials (http://user:secret@proxy): masked before they leave the node.
pf_mask() { sed 's#://[^/@[:space:]"]*@#://***@#g'; }
pf_masked() { pf_begin "$1"; if [ -r "$2" ]; then pf_mask <"$2"; pf_rc=$?; else echo "cannot read $2"; pf_rc=126; fi; pf_end "$1" "$pf_rc"; }

pf_begin meta
echo "probe_version=__PROBE_VERSION__"
echo "uid=$(id -u 2>/dev/null)"
echo "user=${LOGNAME:-$(id -un 2>/dev/null)}"
pf_end meta 0

if [ -r /etc/os-release ]; then pf_cat os-release /etc/os-release; else pf_cat os-release /usr/lib/os-release; fi
pf_begin uname; uname -s -r -m; pf_end uname $?
pf_begin hostname
hostname 2>/dev/null || { read -r PF_LINE 2>/dev/null </proc/sys/kernel/hostname && echo "$PF_LINE"; }
pf_end hostname $?

pf_begin clock
date -u +%s.%N 2>/dev/null
pf_end clock $?

pf_begin pci
PF_VENDORS=""
for d in /sys/bus/pci/devices/*; do
  [ -r "$d/vendor" ] || continue
  v=""; c=""; i=""  # read builtins, not cat: a server has hundreds of PCI functions, each would cost 3 processes
  read -r v 2>/dev/null <"$d/vendor"; read -r c 2>/dev/null <"$d/class"; read -r i 2>/dev/null <"$d/device"
  echo "${d##*/} $v $c $i"
  case "$c" in 0x03*|0x12*|0x0b*) PF_VENDORS="$PF_VENDORS $v" ;; esac
done
pf_end pci 0

pf_begin tools
for t in __VENDOR_TOOLS__ docker chronyc chronyd ntpd ntpq ntpctl openntpd timedatectl ss \
    python3 platform-python iptables nft firewall-cmd ufw; do
  if command -v "$t" >/dev/null 2>&1; then printf '%s ' "$t"; command -v "$t"; fi  # builtins only: no subshell
done
for f in __VENDOR_PATHS__ \
    /lib/systemd/systemd-timesyncd /usr/lib/systemd/systemd-timesyncd /usr/sbin/chronyd /usr/sbin/ntpd \
    /usr/sbin/openntpd; do
  [ -e "$f" ] && echo "path $f"
done
pf_end tools 0

pf_vendor() { case " $PF_VENDORS " in *" $1 "*) return 0 ;; esac; return 1; }

__VENDOR_BLOCKS__

if pf_has docker; then
  pf_run docker-info docker info
  # GPUStack containers already here (gpustack.deployment): names and images, then for those of gpustack/gpustack*
  # only the name, image and GPUSTACK_RUNTIME_DEPLOY_MIRRORED_NAME (never the rest of their environment: tokens).
  pf_begin docker-ps
  PF_PS=$($PF_T docker ps -a --no-trunc --format '{{.Names}}|{{.Image}}' </dev/null 2>&1); pf_rc=$?
  printf '%s\n' "$PF_PS" | head -n 500
  pf_end docker-ps $pf_rc
  PF_GS=$(printf '%s\n' "$PF_PS" | sed -n 's#^\([A-Za-z0-9][A-Za-z0-9_.-]*\)|\(docker\.io/\)\{0,1\}gpustack/gpustack.*#\1#p' | head -n 20)
  if [ -n "$PF_GS" ]; then
    set -f
    # shellcheck disable=SC2086
    pf_run gpustack-inspect docker inspect --format '{{.Name}}|{{.Config.Image}}|{{range .Config.Env}}{{if eq (index (split . "=") 0) "GPUSTACK_RUNTIME_DEPLOY_MIRRORED_NAME"}}{{.}}{{end}}{{end}}' $PF_GS
    set +f
  fi
fi
if [ -r /etc/docker/daemon.json ]; then pf_masked daemon-json /etc/docker/daemon.json; fi
if pf_has systemctl; then
  pf_begin docker-environment
  $PF_T systemctl show docker --property=Environment </dev/null 2>&1 | pf_mask
  pf_end docker-environment 0
fi
if [ -r /etc/environment ]; then
  pf_begin environment
  sed -n -e '/[Pp][Rr][Oo][Xx][Yy]/p' -e '/_SOCKET_IFNAME=/p' /etc/environment | pf_mask
  pf_end environment 0
fi
if [ -r /etc/nvidia-container-runtime/config.toml ]; then
  pf_cat nvidia-runtime-config /etc/nvidia-container-runtime/config.toml
fi

# machine-id is confidential (machine-id(5)): only its SHA-256 leaves the node when sha256sum is there
pf_id() {
  pf_begin "$1"
  if [ ! -r "$2" ]; then echo "cannot read $2"; pf_rc=126
  elif pf_has sha256sum; then sha256sum <"$2"; pf_rc=$?
  else cat "$2"; pf_rc=$?; fi
  pf_end "$1" "$pf_rc"
}
pf_id machine-id /etc/machine-id
if [ -e /sys/class/dmi/id/product_uuid ]; then pf_id product-uuid /sys/class/dmi/id/product_uuid; fi
pf_begin meminfo; sed -n '/^MemTotal:/p' /proc/meminfo; pf_end meminfo $?
if pf_has df; then pf_run df df -Pk; fi
if pf_has ip; then
  pf_run ip-addr ip -o addr show
  if [ "$PF_SERVER" != "-" ]; then pf_run ip-route ip -o route get "$PF_SERVER"; fi
fi

if pf_has timedatectl; then pf_run timedatectl timedatectl show; fi
if pf_has chronyc; then pf_run chronyc-tracking chronyc -n tracking; fi
if pf_has ntpq; then pf_run ntpq ntpq -pn; fi

if pf_has ss; then pf_run ss ss -Hltnp; fi
if pf_has firewall-cmd; then pf_run firewalld firewall-cmd --state; pf_run firewalld-rules firewall-cmd --list-all; fi
if pf_has ufw; then pf_run ufw ufw status verbose; fi
if pf_has nft; then pf_run nftables nft list ruleset; fi
if pf_has iptables; then pf_run iptables iptables -S; fi
pf_cat port-range /proc/sys/net/ipv4/ip_local_port_range
pf_cat reserved-ports /proc/sys/net/ipv4/ip_local_reserved_ports
pf_begin done; echo ok; pf_end done 0
"""
PROBE_SCRIPT = (
    PROBE_SCRIPT.replace("__PROBE_VERSION__", str(PROBE_VERSION))
    .replace("__VENDOR_PATH__", ":".join(probe_path_dirs()))
    .replace("__VENDOR_TOOLS__", " ".join(probe_tools()))
    .replace("__VENDOR_PATHS__", " ".join(probe_paths()))
    .replace("__VENDOR_BLOCKS__", probe_blocks())
)


@dataclass
class Section:
    name: str
    text: str
    rc: int | None  # None: the section began but never ended (output cut off, or the probe was killed)


def probe_nonce() -> str:
    return secrets.token_hex(8)


def server_literal(address: str) -> str:
    """The server's address as the probe may take it: an IPv4 or IPv6 literal in canonical form, else `-` (none).

    A DNS name or anything else is never passed: the rules then compare the inventory address literally."""
    try:
        return ipaddress.ip_address(address.strip()).compressed
    except ValueError:
        return "-"


def probe_command(nonce: str, tool_timeout: int, server_address: str = "-") -> str:
    """The single remote command: the fixed script fed to `sh -s` with only our nonce, a number and the server's
    address (a validated IP literal, or `-`) as arguments."""
    if not re.fullmatch(r"[0-9a-f]{16}", nonce):
        raise ValueError("nonce must be 16 hex digits")
    if server_address != "-":
        try:
            parsed = ipaddress.ip_address(server_address)
        except ValueError:
            raise ValueError("the server address must be an IP literal") from None
        if parsed.compressed != server_address:
            raise ValueError("the server address must be an IP literal in canonical form")
    return f"sh -s -- {nonce} {int(tool_timeout)} {server_address}"


def split_sections(output: str, nonce: str) -> dict[str, Section]:
    """Cut probe output into sections by the nonce frames; a section without its END keeps what arrived."""
    begin = re.compile(rf"^@@PF:{nonce}:BEGIN ([\w.\-]+)@@$", re.M)
    end = re.compile(rf"^@@PF:{nonce}:END ([\w.\-]+) (\d+)@@$", re.M)
    sections: dict[str, Section] = {}
    position = 0
    while True:
        start = begin.search(output, position)
        if not start:
            break
        name = start.group(1)
        body_start = start.end() + 1
        finish = end.search(output, body_start)
        next_begin = begin.search(output, body_start)
        if finish and finish.group(1) == name and (not next_begin or finish.start() < next_begin.start()):
            body = output[body_start : finish.start()]
            sections[name] = Section(name, body.rstrip("\n"), int(finish.group(2)))
            position = finish.end()
        else:
            stop = next_begin.start() if next_begin else len(output)
            sections[name] = Section(name, output[body_start:stop].rstrip("\n"), None)
            position = stop
    return sections
