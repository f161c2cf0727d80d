"""Whether a process id stands for a live process, for locks and for the sandbox's teardown."""

from pathlib import Path


def alive(pid: int) -> bool:
    """True while `pid` runs. A zombie (exited, not yet reaped by its parent) is not alive:
    a run killed with SIGKILL must count as gone before its parent collects it."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"
