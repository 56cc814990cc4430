"""Validation of what an operator types about a node before it can ever reach a socket or a shell."""

import ipaddress
import re

from django.core.exceptions import ValidationError

_LABEL = re.compile(r"(?!-)[A-Za-z0-9-]{1,63}(?<!-)")  # used with fullmatch: `$` would accept "name\n"


def is_valid_address(value: str) -> bool:
    """True for an IPv4/IPv6 address or an RFC 1123 DNS name (no scheme, port, path, spaces or shell characters)."""
    if not value or len(value) > 253:
        return False
    try:
        ipaddress.ip_address(value)
        return True
    except ValueError:
        pass
    name = value[:-1] if value.endswith(".") else value
    labels = name.split(".")
    # An all-numeric dotted name is a malformed IPv4 address, not a host name.
    if all(label.isdigit() for label in labels):
        return False
    return all(_LABEL.fullmatch(label) for label in labels)


def validate_address(value: str) -> None:
    if not is_valid_address(value):
        raise ValidationError(
            "%(value)r is not an IP address or DNS host name", code="invalid_address", params={"value": value}
        )


_USER = re.compile(r"[a-z_][a-z0-9_.-]{0,31}\$?", re.IGNORECASE)  # fullmatch, never `$` (accepts "root\n")


def validate_ssh_user(value: str) -> None:
    if not isinstance(value, str) or not _USER.fullmatch(value):
        raise ValidationError(
            "%(value)r is not a valid login name (letters, digits, '_', '.', '-'; at most 32)",
            code="invalid_user",
            params={"value": value},
        )


# A node's name is shown in pages, CSV, JSON, script comments and a download's file name: word characters (letters,
# digits, '_', in any script) and the punctuation of host names and addresses. No control, format or space character
# (CR/LF would split a header or a script comment; a quote would end a header's filename).
_NODE_NAME = re.compile(r"[\w.:@%+-]{1,128}")


def validate_node_name(value: str) -> None:
    if not isinstance(value, str) or not _NODE_NAME.fullmatch(value):
        raise ValidationError(
            "%(value)r is not a node name (letters, digits and . _ - : @ %% +, at most 128, no spaces or control "
            "characters)",
            code="invalid_node_name",
            params={"value": value[:200] if isinstance(value, str) else value},
        )
