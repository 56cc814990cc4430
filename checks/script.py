"""The remediation script an operator downloads and runs as root: commands only, node text only in comments.

Pure: results in, script text out. Commands come from `CheckResult.commands` (template-built, see
`checks/remediation.py`); summaries and explanations, which may carry text a node printed, appear only in comment
lines with every character that could end a line replaced, so no comment can end early.
"""

from __future__ import annotations

import re
import shlex
import textwrap
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass

COMMENT_WIDTH = 116
COMMENT_LIMIT = 2000  # characters of one explanation kept in the script

# Line terminators of POSIX shells and of the editors and terminals an operator reads the script in.
_LINE_BREAKS = re.compile("[\x00-\x08\x0a-\x1f\x7f-\x9f\u2028\u2029]")


@dataclass(frozen=True)
class ScriptStep:
    check_id: str
    status: str
    summary: str
    remediation: str
    commands: tuple[str, ...]


def comment_text(text: str, limit: int = COMMENT_LIMIT) -> str:
    """`text` made safe for a `#` comment: no character that ends a line, no invisible format characters."""
    text = _LINE_BREAKS.sub(" ", str(text))
    text = "".join(ch if unicodedata.category(ch) not in ("Cf", "Zl", "Zp", "Cs") else " " for ch in text)
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _comment(text: str, limit: int = COMMENT_LIMIT) -> list[str]:
    safe = comment_text(text, limit)
    return [f"# {line}" for line in textwrap.wrap(safe, COMMENT_WIDTH, break_on_hyphens=False)] or ["#"]


HEADER = """\
set -eu

dry_run=0
case "${1:-}" in
  --dry-run) dry_run=1 ;;
  '') ;;
  *) echo "usage: $0 [--dry-run]" >&2; exit 2 ;;
esac
if [ "$dry_run" -eq 0 ] && [ "$(id -u)" -ne 0 ]; then
  echo "$0: run this script as root (sudo sh $0), or with --dry-run to print its steps without running them" >&2
  exit 1
fi
"""


def render_script(*, title: str, steps: Iterable[ScriptStep]) -> str:
    """A POSIX sh script: `set -eu`, root only, `--dry-run` prints every step and runs none, each step echoed first.

    Every command is idempotent by construction (see `checks/remediation.py`), so a second run changes nothing
    that the first one fixed."""
    lines = [
        "#!/bin/sh",
        *_comment(title, 400),
        "# Review every step before running it; Preflight never runs this script itself.",
        "# Usage: sh SCRIPT [--dry-run]   (as root; --dry-run prints each command and runs none)",
        HEADER,
    ]
    count = 0
    for step in steps:
        lines.extend(_comment(f"[{step.status}] {step.check_id}: {step.summary}", 500))
        if step.remediation:
            lines.extend(_comment(step.remediation))
        if not step.commands:
            lines.append("# (no command: see the explanation above)")
        for command in step.commands:
            count += 1
            if "$" in command:  # printed as written; the shell expands it only when the step runs
                lines.append("# shellcheck disable=SC2016")
            lines.append(f"printf '+ %s\\n' {shlex.quote(command)}")
            lines.append('if [ "$dry_run" -eq 0 ]; then')
            lines.append(f"  {command}")
            lines.append("fi")
        lines.append("")
    if count:
        lines.append(f"echo 'Preflight: {count} step(s) done; audit the node again to confirm.'")
    else:
        lines.append("echo 'Preflight: nothing to run on this node; see the comments for what to check.'")
    return "\n".join(lines) + "\n"
