"""Room for open files: the connectivity matrix holds one SSH connection (a socket) per destination node open for
its whole run, so a cluster of a few thousand nodes needs more than the usual soft limit of 1,024 open files."""

from __future__ import annotations

import resource


class OpenFilesLimit(Exception):
    """This process may not open as many files as a run needs; the message says how to raise the limit."""


def make_room_for_open_files(needed: int) -> int:
    """Raise this process's soft RLIMIT_NOFILE to at least `needed` (never above the hard limit, never lowering it)
    and return the soft limit now in force. Raises OpenFilesLimit when the hard limit is below `needed`."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY or soft >= needed:
        return soft
    if hard != resource.RLIM_INFINITY and hard < needed:
        raise OpenFilesLimit(
            f"needs about {needed} open files at once, and this process may open at most {hard} (its hard limit, "
            "`ulimit -Hn`); raise it for the Celery worker (systemd: LimitNOFILE=65536 in its unit)"
        )
    resource.setrlimit(resource.RLIMIT_NOFILE, (needed, hard))
    return needed
