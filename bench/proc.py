"""CPU time and resident memory of a server process and its live descendants, from ``/proc`` (Linux).

CPU is ``utime + stime`` of ``/proc/<pid>/stat`` summed over the process tree (gunicorn's worker is a
child of its arbiter: a child's time is in its own ``stat`` while it lives, not in the parent's
``cutime``). Memory is ``VmRSS`` of ``/proc/<pid>/status``, likewise summed.
"""

from __future__ import annotations

import os
from pathlib import Path

TICKS = os.sysconf("SC_CLK_TCK")


def _read(path: str) -> str:
    try:
        return Path(path).read_text()
    except OSError:
        return ""


def _children(pid: int) -> list[int]:
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        found += [int(c) for c in _read(f"{task}/children").split()]
    return found


def tree(pid: int) -> list[int]:
    """``pid`` and every live descendant."""
    pids, todo = [], [pid]
    while todo:
        current = todo.pop()
        pids.append(current)
        todo += _children(current)
    return pids


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of the tree rooted at ``pid``."""
    total = 0
    for each in tree(pid):
        stat = _read(f"/proc/{each}/stat")
        if stat:
            fields = stat[stat.rindex(")") + 2 :].split()
            total += int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15)
    return total / TICKS


def rss_bytes(pid: int) -> int:
    """Resident memory of the tree rooted at ``pid``."""
    total = 0
    for each in tree(pid):
        for line in _read(f"/proc/{each}/status").splitlines():
            if line.startswith("VmRSS:"):
                total += int(line.split()[1]) * 1024
    return total
