"""The only code that opens connections: SSH (paramiko) to nodes, or a local shell for the portal's own machine."""

from .base import ConnectFailure, ProbeRun, Target, Transport
from .local import LocalTransport
from .ssh import SshTransport

__all__ = ["ConnectFailure", "LocalTransport", "ProbeRun", "SshTransport", "Target", "Transport"]
