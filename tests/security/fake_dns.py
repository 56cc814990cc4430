"""A resolver whose answers change between calls (DNS rebinding), named in PREFLIGHT_TARGET_RESOLVER by tests.

`ANSWERS[name]` is the list of successive answers: each call takes the next one, the last one repeats. `CALLS`
records every lookup. The code under test calls this exactly as it calls the system resolver; nothing is patched.
"""

import socket

ANSWERS: dict[str, list] = {}  # an answer is an address, or a list of addresses (a multi-record answer)
CALLS: list[str] = []


def rebinding(host: str, port: int) -> list[str]:
    CALLS.append(host)
    answers = ANSWERS.get(host)
    if not answers:
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
    answer = answers.pop(0) if len(answers) > 1 else answers[0]
    return list(answer) if isinstance(answer, list) else [answer]


def reset(**answers: list[str]) -> None:
    ANSWERS.clear()
    CALLS.clear()
    ANSWERS.update({name: list(values) for name, values in answers.items()})
