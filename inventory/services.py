"""Writes to the inventory. Views, admin actions, commands and the API call these; nothing else saves models."""

from __future__ import annotations

import copy
import hashlib
import re
from dataclasses import dataclass, field
from pathlib import Path

from django.conf import settings
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.utils import timezone
from django.utils.text import slugify

from portal import permissions
from portal.sql import select_rows, update_rows

from .choices import CredentialKind, HostKeyState, NodeRole, Transport
from .importers.ansible import InventoryError, InventoryHost, parse_inventory, quoted, shorten
from .models import (
    Accelerator,
    Cluster,
    Credential,
    DriverInstall,
    HostKey,
    Node,
    RequirementProfile,
)
from .validators import is_valid_address, validate_ssh_user

SERVER_GROUPS = frozenset({"server", "gpustack_server"})
WORKER_GROUPS = frozenset({"worker", "workers", "gpustack_worker"})
MAX_KEY_FILE_BYTES = 64 * 1024
_TEMPLATED = re.compile(r"\{\{|\{%")


# --- requirement profiles -----------------------------------------------------------------------------------------


def profile_get_default() -> RequirementProfile:
    """The profile new clusters get: PREFLIGHT_DEFAULT_PROFILE's key, else the one marked default in the admin."""
    key = settings.PREFLIGHT_DEFAULT_PROFILE
    profile = RequirementProfile.objects.filter(key=key).first() if key else None
    if profile is None:
        profile = RequirementProfile.objects.filter(is_default=True).first()
    if profile is None:
        raise RequirementProfile.DoesNotExist("no default requirement profile; run migrations")
    return profile


@transaction.atomic
def profile_duplicate(*, profile: RequirementProfile, key: str | None = None) -> RequirementProfile:
    """Copy a profile with all its rules under a new key, so an operator can tailor it without touching the original."""
    base = key or f"{profile.key}-copy"
    new_key, n = base, 1
    while RequirementProfile.objects.filter(key=new_key).exists():
        n += 1
        new_key = f"{base}-{n}"
    os_rules = list(profile.os_rules.all())
    accelerator_rules = list(profile.accelerator_rules.all())
    port_rules = list(profile.port_rules.all())
    copy = RequirementProfile.objects.get(pk=profile.pk)
    copy.pk = None
    copy.key = new_key
    copy.name = f"{profile.name} (copy)"
    copy.is_default = False
    copy.save()
    for rules in (os_rules, accelerator_rules, port_rules):
        for rule in rules:
            rule.pk = None
            rule.profile = copy
        if rules:
            type(rules[0]).objects.bulk_create(rules)
    return copy


# --- credentials --------------------------------------------------------------------------------------------------


def credential_upsert(*, name: str, kind: str, secret: str, passphrase: str = "") -> tuple[Credential, bool]:
    """Create or replace a credential's secret by name; returns (credential, changed)."""
    credential = Credential.objects.filter(name=name).first()
    if (
        credential is not None
        and credential.kind == kind
        and credential.secret == secret
        and credential.passphrase == passphrase
    ):
        return credential, False
    credential = credential or Credential(name=name)
    credential.kind = kind
    credential.secret = secret
    credential.passphrase = passphrase
    credential.full_clean(exclude=["secret_encrypted", "passphrase_encrypted"])
    credential.save()
    return credential, True


# --- who may point a node where, with which credential -------------------------------------------------------------

# Where a node's credential is sent: changing any of these without the right to change credentials removes it.
NODE_WHERE_FIELDS = ("address", "ssh_port", "transport")


def node_access_check(*, user, values: dict, before: Node | None, credential_is_new: bool = False) -> str | None:
    """The one rule for every door that creates or changes a node (admin form and inline, API, import).

    `values` holds the node's new `address`, `ssh_port`, `transport` and `credential_id` (missing keys keep
    `before`'s). Raises PermissionDenied when `user` may not do this; returns a sentence when the node's kept
    credential must be removed (the caller sets it to None), else None. `credential_is_new`: the caller created the
    credential in this request and checked add/change credential when it did. `user=None` is the system (CLI).
    """

    def value(name):
        return values[name] if name in values else getattr(before, name, None)

    transport = value("transport") or Transport.SSH
    credential_id = value("credential_id")
    if transport == Transport.LOCAL and (before is None or before.transport != Transport.LOCAL):
        permissions.require(user, permissions.LOCAL_TRANSPORT)
    chosen = credential_id is not None and (before is None or before.credential_id != credential_id)
    if chosen and not credential_is_new:
        permissions.require(user, permissions.USE_CREDENTIAL)
    moved = before is not None and any(
        name in values and str(values[name]) != str(getattr(before, name)) for name in NODE_WHERE_FIELDS
    )
    kept = credential_id is not None and not chosen and not credential_is_new
    if moved and kept and not permissions.allowed(user, permissions.KEEP_CREDENTIAL):
        return (
            f"{before.name}: its address, port or transport changed, so its credential was removed "
            "(keeping it needs inventory.change_credential); set one again"
        )
    return None


def credential_upsert_checked(*, user, name: str, kind: str, secret: str, passphrase: str = "") -> Credential:
    """credential_upsert for a user: a new name needs add_credential, replacing an existing secret change_credential,
    giving an existing one unchanged add_credential or view_credential. Checked before anything is written."""
    existing = Credential.objects.filter(name=name).first()
    if existing is None:
        permissions.require(user, permissions.ADD_CREDENTIAL)
    elif existing.kind == kind and existing.secret == secret and existing.passphrase == passphrase:
        # The caller already knows this secret: adding it anew or choosing the stored one comes to the same.
        if not permissions.allowed(user, permissions.ADD_CREDENTIAL):
            permissions.require(user, permissions.USE_CREDENTIAL)
    else:
        permissions.require(user, permissions.KEEP_CREDENTIAL)
    credential, _ = credential_upsert(name=name, kind=kind, secret=secret, passphrase=passphrase)
    return credential


# --- Ansible inventory import -------------------------------------------------------------------------------------


@dataclass
class PlannedNode:
    name: str
    role: str
    address: str
    ssh_port: int | None
    ssh_user: str | None
    credential: tuple[str, str, str] | None  # (name, kind, secret)
    line: int
    network_group: str | None = None  # the host var preflight_network_group; None: leave the node's as it is


@dataclass
class ImportReport:
    cluster: str
    profile: str
    created: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    key_files_not_read: list[str] = field(default_factory=list)
    credentials_removed: list[str] = field(default_factory=list)
    cluster_created: bool = False
    server_runs_worker: bool = False

    def summary(self) -> str:
        parts = [
            f"cluster {self.cluster} ({'created' if self.cluster_created else 'updated'}, profile {self.profile})",
            f"{len(self.created)} nodes created",
            f"{len(self.updated)} updated",
            f"{len(self.unchanged)} unchanged",
        ]
        if self.skipped:
            parts.append(
                f"{len(self.skipped)} hosts skipped (not in a server or worker group): {', '.join(self.skipped[:10])}"
            )
        if self.key_files_not_read:
            parts.append(
                f"{len(self.key_files_not_read)} nodes name a private key file, which is not read from an upload: "
                "set their credential in the admin"
            )
        if self.credentials_removed:
            parts.append(
                f"{len(self.credentials_removed)} nodes moved to another address or port and lost their credential "
                f"(keeping it needs inventory.change_credential): {', '.join(self.credentials_removed[:10])}"
            )
        return "; ".join(parts)


def _host_var(host: InventoryHost, *names: str) -> tuple[str | None, int]:
    for name in names:
        if name in host.vars and host.vars[name] is not None:
            return str(host.vars[name]), host.var_lines.get(name, host.line)
    return None, host.line


def _plain(value: str, what: str, line: int, source: str) -> str:
    if value == "!vault" or _TEMPLATED.search(value):
        raise InventoryError(
            f"{what} is vaulted or templated, which Preflight cannot evaluate; give a literal value "
            "or set it in the admin after import",
            line=line,
            source=source,
        )
    return value


def _read_key_file(path_text: str, *, base_dir: Path | None, line: int, source: str) -> str:
    path = Path(path_text).expanduser()
    if not path.is_absolute() and base_dir is not None:
        path = base_dir / path
    try:
        if path.stat().st_size > MAX_KEY_FILE_BYTES:
            raise InventoryError(
                f"private key file {path} is larger than {MAX_KEY_FILE_BYTES} bytes", line=line, source=source
            )
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise InventoryError(f"cannot read private key file {path}: {reason}", line=line, source=source) from None
    if "PRIVATE KEY-----" not in text:
        raise InventoryError(f"{path} is not a PEM or OpenSSH private key", line=line, source=source)
    return text


def _plan_node(
    host: InventoryHost, *, cluster_name: str, base_dir: Path | None, source: str, read_key_files: bool
) -> PlannedNode:
    is_server = bool(host.groups & SERVER_GROUPS)
    role = NodeRole.SERVER if is_server else NodeRole.WORKER
    if len(host.name) > 128:
        raise InventoryError(
            f"host name {quoted(host.name[:40])}... is longer than 128 characters", line=host.line, source=source
        )

    address, line = _host_var(host, "ansible_host", "ansible_ssh_host")
    address = _plain(address, "ansible_host", line, source) if address is not None else host.name
    if not is_valid_address(address):
        raise InventoryError(
            f"address {quoted(address)} of host {quoted(host.name)} is not an IP address or DNS name",
            line=line,
            source=source,
        )

    port_text, line = _host_var(host, "ansible_port", "ansible_ssh_port")
    port = None
    if port_text is not None:
        port_text = _plain(port_text, "ansible_port", line, source)
        if not (port_text.isascii() and port_text.isdigit() and len(port_text) <= 5 and 1 <= int(port_text) <= 65535):
            raise InventoryError(
                f"ansible_port {quoted(port_text)} of host {quoted(host.name)} is not a port (1-65535)",
                line=line,
                source=source,
            )
        port = int(port_text)

    user, line = _host_var(host, "ansible_user", "ansible_ssh_user")
    if user is not None:
        user = _plain(user, "ansible_user", line, source)
        try:
            validate_ssh_user(user)
        except ValidationError:
            raise InventoryError(
                f"ansible_user {quoted(user)} of host {quoted(host.name)} is not a valid login name",
                line=line,
                source=source,
            ) from None

    credential = None
    key_path, key_line = _host_var(host, "ansible_ssh_private_key_file", "ansible_private_key_file")
    password, password_line = _host_var(host, "ansible_password", "ansible_ssh_pass", "ansible_ssh_password")
    if key_path is not None and not read_key_files:
        _plain(key_path, "ansible_ssh_private_key_file", key_line, source)
    elif key_path is not None:
        key_path = _plain(key_path, "ansible_ssh_private_key_file", key_line, source)
        secret = _read_key_file(key_path, base_dir=base_dir, line=key_line, source=source)
        digest = hashlib.sha256(secret.encode()).hexdigest()[:12]
        credential = (f"{cluster_name}: key {Path(key_path).name} ({digest})", CredentialKind.PRIVATE_KEY, secret)
    elif password is not None:
        password = _plain(password, "ansible_password", password_line, source)
        credential = (f"{cluster_name}: password for {host.name}", CredentialKind.PASSWORD, password)
    group, group_line = _host_var(host, "preflight_network_group")
    if group is not None:
        group = _plain(group, "preflight_network_group", group_line, source)
        if not NETWORK_GROUP.fullmatch(group):
            raise InventoryError(
                f"preflight_network_group {quoted(group[:64])} of host {quoted(host.name)} is not a group name "
                "(at most 64 letters, digits, _ . : / -)",
                line=group_line,
                source=source,
            )
    return PlannedNode(host.name, role, address, port, user, credential, host.line, group)


NETWORK_GROUP = re.compile(r"[A-Za-z0-9_.:/-]{0,64}")


def upload_text(upload) -> str:
    """The text of an uploaded inventory: its size is checked before a byte is read, and never more than the limit
    (plus one byte) is read; not UTF-8 is an InventoryError like any other malformed file."""
    limit = settings.PREFLIGHT_INVENTORY_MAX_BYTES
    name = shorten(getattr(upload, "name", None) or "inventory", 100)
    size = getattr(upload, "size", None)
    if size is not None and size > limit:
        raise InventoryError(
            f"the file is {size} bytes, larger than the {limit} bytes an inventory may be", source=name
        )
    data = upload.read(limit + 1)
    if len(data) > limit:
        raise InventoryError(f"the file is larger than the {limit} bytes an inventory may be", source=name)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise InventoryError("not a UTF-8 text file", source=name) from None


def inventory_import(
    *,
    text: str,
    source: str = "inventory",
    cluster_name: str | None = None,
    profile_key: str | None = None,
    fmt: str | None = None,
    base_dir: Path | None = None,
    read_key_files: bool = True,
    user=None,
) -> ImportReport:
    """Import an Ansible inventory into a cluster: all of it, or nothing (raises InventoryError with the line).

    `read_key_files=False` is for uploads through the web: a key path there names a file on the *portal's* disk,
    which an uploader must not be able to make Preflight read. `user` is who imports (None: the system, for the
    CLI): a credential in the file needs that user's credential permissions, and a node that moves keeps its
    credential only for a user who may change credentials (see node_access_check).
    """
    if len(text.encode()) > settings.PREFLIGHT_INVENTORY_MAX_BYTES:
        raise InventoryError(f"inventory is larger than {settings.PREFLIGHT_INVENTORY_MAX_BYTES} bytes", source=source)
    if "\x00" in text:
        raise InventoryError("inventory contains NUL bytes; is it a binary file?", source=source)
    try:
        parsed = parse_inventory(text, source=source, fmt=fmt, max_hosts=settings.PREFLIGHT_IMPORT_MAX_HOSTS)
    except RecursionError:
        raise InventoryError("groups or values are nested too deeply to be an inventory", source=source) from None

    name = cluster_name or slugify(Path(source).stem)
    if not name or slugify(name) != name:
        raise InventoryError(
            f"cluster name {quoted(name)} must be a slug (letters, digits, '-', '_'); pass --cluster", source=source
        )
    profile = None
    if profile_key is not None:
        profile = RequirementProfile.objects.filter(key=profile_key).first()
        if profile is None:
            known = ", ".join(RequirementProfile.objects.values_list("key", flat=True))
            raise InventoryError(f"unknown requirement profile {quoted(profile_key)} (known: {known})", source=source)

    planned: list[PlannedNode] = []
    skipped: list[str] = []
    for host in parsed.hosts.values():
        if host.groups & (SERVER_GROUPS | WORKER_GROUPS):
            planned.append(
                _plan_node(host, cluster_name=name, base_dir=base_dir, source=source, read_key_files=read_key_files)
            )
        else:
            skipped.append(host.name)
    if not planned:
        raise InventoryError(
            "no hosts in a server group (server, gpustack_server) or worker group (worker, workers, gpustack_worker)",
            source=source,
        )
    both = any(h.groups & SERVER_GROUPS and h.groups & WORKER_GROUPS for h in parsed.hosts.values())

    with transaction.atomic():
        cluster = Cluster.objects.select_for_update().filter(name=name).first()
        report = ImportReport(cluster=name, profile="", skipped=skipped, server_runs_worker=both)
        report.key_files_not_read = [
            h.name
            for h in parsed.hosts.values()
            if not read_key_files
            and h.groups & (SERVER_GROUPS | WORKER_GROUPS)
            and ("ansible_ssh_private_key_file" in h.vars or "ansible_private_key_file" in h.vars)
        ]
        if cluster is None:
            cluster = Cluster.objects.create(
                name=name, profile=profile or profile_get_default(), server_runs_worker=both
            )
            report.cluster_created = True
        else:
            changed = []
            if profile is not None and cluster.profile_id != profile.pk:
                cluster.profile = profile
                changed.append("profile")
            if both and not cluster.server_runs_worker:
                cluster.server_runs_worker = True
                changed.append("server_runs_worker")
            if changed:
                cluster.save(update_fields=[*changed, "updated"])
        report.profile = cluster.profile.key

        existing = {node.name: node for node in Node.objects.filter(cluster=cluster)}
        credentials: dict[str, Credential] = {}
        for plan in planned:
            credential = None
            if plan.credential is not None:
                cred_name, kind, secret = plan.credential
                if cred_name not in credentials:
                    try:
                        credentials[cred_name] = credential_upsert_checked(
                            user=user, name=cred_name, kind=kind, secret=secret
                        )
                    except PermissionDenied as exc:
                        raise InventoryError(
                            f"host {quoted(plan.name)} sets a credential: {exc}", line=plan.line, source=source
                        ) from None
                credential = credentials[cred_name]
            node = existing.get(plan.name)
            created = node is None
            node = node or Node(cluster=cluster, name=plan.name)
            stored = copy.copy(node) if not created else None
            before = (node.role, node.address, node.ssh_port, node.ssh_user, node.credential_id, node.network_group)
            node.role = plan.role
            if plan.network_group is not None:
                node.network_group = plan.network_group
            node.address = plan.address
            if plan.ssh_port is not None:
                node.ssh_port = plan.ssh_port
            if plan.ssh_user is not None:
                node.ssh_user = plan.ssh_user
            if credential is not None:
                node.credential = credential
            try:
                note = node_access_check(
                    user=user,
                    values={"address": node.address, "ssh_port": node.ssh_port, "credential_id": node.credential_id},
                    before=stored,
                    credential_is_new=credential is not None,
                )
            except PermissionDenied as exc:
                raise InventoryError(f"host {quoted(plan.name)}: {exc}", line=plan.line, source=source) from None
            if note:
                node.credential = None
                report.credentials_removed.append(plan.name)
            after = (node.role, node.address, node.ssh_port, node.ssh_user, node.credential_id, node.network_group)
            if created or before != after:
                try:
                    node.full_clean()
                except ValidationError as exc:
                    raise InventoryError(
                        f"host {quoted(plan.name)}: {_validation_text(exc)}", line=plan.line, source=source
                    ) from None
                node.save()
                (report.created if created else report.updated).append(plan.name)
            else:
                report.unchanged.append(plan.name)
    return report


def _validation_text(exc: ValidationError) -> str:
    if hasattr(exc, "message_dict"):
        return "; ".join(f"{k}: {' '.join(v)}" for k, v in exc.message_dict.items())
    return " ".join(exc.messages)


# --- demo ---------------------------------------------------------------------------------------------------------

DEMO_CLUSTER = "demo"


@transaction.atomic
def demo_load() -> tuple[Cluster, bool]:
    """The demo cluster: this machine audited locally as the server, and two workers on loopback addresses.

    The workers have no credential and nothing listens for them unless the operator starts sshd there, so their
    audits show what an unreachable node looks like; no address outside this machine is ever used.
    """
    cluster, created = Cluster.objects.get_or_create(
        name=DEMO_CLUSTER,
        defaults={
            "profile": profile_get_default(),
            "description": "Demo: this machine as the server, two loopback workers. Safe to delete.",
            "server_runs_worker": True,
        },
    )
    nodes = [
        ("this-machine", "127.0.0.1", NodeRole.SERVER, "local"),
        ("worker-a", "127.0.0.2", NodeRole.WORKER, "ssh"),
        ("worker-b", "127.0.0.3", NodeRole.WORKER, "ssh"),
    ]
    for name, address, role, transport in nodes:
        Node.objects.update_or_create(
            cluster=cluster, name=name, defaults={"address": address, "role": role, "transport": transport}
        )
    return cluster, created


# --- host keys and facts recorded by audits ------------------------------------------------------------------------


@transaction.atomic
def host_key_accept(*, host_key: HostKey, user=None) -> HostKey:
    """Trust a pending key (an operator confirmed the change); the key it replaces is retired, not deleted."""
    HostKey.objects.filter(node_id=host_key.node_id, key_type=host_key.key_type, state=HostKeyState.TRUSTED).exclude(
        pk=host_key.pk
    ).update(state=HostKeyState.RETIRED)
    host_key.state = HostKeyState.TRUSTED
    host_key.accepted_at = timezone.now()
    host_key.accepted_by = user if user is not None and user.is_authenticated else None
    host_key.save(update_fields=["state", "accepted_at", "accepted_by"])
    return host_key


# An accelerator's description, compared with what the probe found to tell a changed device from an unchanged one.
_DEVICE_FIELDS = ("model", "memory_mib", "uuid", "pci_address", "driver_version")


@transaction.atomic(savepoint=False)  # part of the node audit's own transaction: no savepoint needed
def node_record_facts(
    *,
    node: Node,
    accelerators: list[dict],
    installs: list[dict],
    status: str,
    facts: dict,
    when=None,
    reached: bool | None = None,
) -> None:
    """Upsert what an audit found on a node. Devices and installs no longer found are marked gone, never deleted.
    `reached`: whether that audit reached the node over SSH (Node.last_reached, read with the status)."""
    when = when or timezone.now()
    # (portal.sql: every node of every audit runs this; reading and updating by column, not through model
    # instances, the ORM's query building cost more than the database took. The usual node is unchanged: two
    # reads and three UPDATEs.)
    present = {
        (vendor, index): (pk, dict(zip(_DEVICE_FIELDS, values, strict=True)))
        for pk, vendor, index, *values in select_rows(
            Accelerator, ("id", "vendor", "index", *_DEVICE_FIELDS), where={"node_id": node.pk, "gone_at": None}
        )
    }
    seen = set()
    unchanged: list[int] = []  # still there as they were: one UPDATE of last_seen for all, not a save each
    gone: list[int] = []
    for item in accelerators:
        key = (item["vendor"], item["index"])
        seen.add(key)
        values = {k: item.get(k) or ("" if k != "memory_mib" else None) for k in _DEVICE_FIELDS}
        existing = present.get(key)
        if existing is not None and existing[1]["uuid"] and values["uuid"] and existing[1]["uuid"] != values["uuid"]:
            # A different physical device now sits at this index: the old one is gone (first: only one row of an
            # index may be present).
            update_rows(Accelerator, set={"gone_at": when}, where={"id": existing[0]})
            existing = None
        if existing is None:
            Accelerator.objects.create(node=node, vendor=item["vendor"], index=item["index"], **values)
        elif existing[1] != values:
            update_rows(Accelerator, set={**values, "last_seen": when}, where={"id": existing[0]})
        else:
            unchanged.append(existing[0])
    gone += [pk for key, (pk, _) in present.items() if key not in seen]
    if gone:
        update_rows(Accelerator, set={"gone_at": when}, where={"id": gone})
    if unchanged:
        update_rows(Accelerator, set={"last_seen": when}, where={"id": unchanged})

    current = {
        (kind, name): (pk, version)
        for pk, kind, name, version in select_rows(
            DriverInstall, ("id", "kind", "name", "version"), where={"node_id": node.pk, "gone_at": None}
        )
    }
    found = set()
    unchanged, gone = [], []
    for item in installs:
        key = (item["kind"], item["name"])
        found.add(key)
        existing = current.get(key)
        if existing is not None and existing[1] == item.get("version", ""):
            unchanged.append(existing[0])
            continue
        if existing is not None:  # a version change is history: the old install is gone, the new one detected now
            update_rows(DriverInstall, set={"gone_at": when}, where={"id": existing[0]})
        DriverInstall.objects.create(
            node=node,
            kind=item["kind"],
            name=item["name"],
            vendor=item.get("vendor", ""),
            version=item.get("version", ""),
        )
    gone += [pk for key, (pk, _) in current.items() if key not in found]
    if gone:
        update_rows(DriverInstall, set={"gone_at": when}, where={"id": gone})
    if unchanged:
        update_rows(DriverInstall, set={"last_seen": when}, where={"id": unchanged})
    update_rows(
        Node,
        set={"last_facts": facts, "last_audit_status": status, "last_reached": reached, "last_audited_at": when},
        where={"id": node.pk},
    )


def node_record_status(*, node: Node, status: str, when=None, reached: bool | None = None) -> None:
    """The node's status from its latest audit, and whether that audit reached it (see node_record_facts)."""
    Node.objects.filter(pk=node.pk).update(
        last_audit_status=status, last_reached=reached, last_audited_at=when or timezone.now()
    )
