"""Exit codes of the `rollout` command and the errors that map onto them.

Every error a user can cause or meet is one of these, so the CLI can print one clear line
and exit with the code DESIGN promises, never a traceback.
"""

from enum import IntEnum


class ExitCode(IntEnum):
    """The command-line contract (DESIGN, "Command line")."""

    OK = 0  # promoted / command succeeded / analysis passed
    ROLLED_BACK = 1  # the canary failed analysis
    INVALID_INPUT = 2  # nothing was changed
    INCOMPLETE = 3  # infrastructure failure or inconclusive; traffic left on stable
    ABORTED = 4  # aborted or paused by a person


class RolloutError(Exception):
    """Base of errors that end a command with a specific exit code and one message."""

    exit_code: ExitCode = ExitCode.INCOMPLETE


class InputError(RolloutError):
    """Bad input: a file, field or value that is wrong. Nothing was changed."""

    exit_code = ExitCode.INVALID_INPUT


class InfraError(RolloutError):
    """Something outside our input failed (Prometheus down, API 5xx): could not complete."""

    exit_code = ExitCode.INCOMPLETE
