"""What `rollout run` shows while it works: a live view on a terminal, plain lines otherwise.

Both are fed the driver's state after every change; neither decides anything.
"""

from typing import IO, Protocol

from rich.console import Console, Group
from rich.live import Live
from rich.table import Table
from rich.text import Text

from rollout.driver import Driver
from rollout.engine import RolloutState
from rollout.judge import Verdict

_STYLE = {Verdict.PASS: "green", Verdict.FAIL: "bold red", Verdict.INCONCLUSIVE: "yellow"}


class View(Protocol):
    """Receives the state after each change, and is closed at the end of the run."""

    def __call__(self, state: RolloutState) -> None: ...

    def close(self) -> None: ...


def _headline(driver: Driver, state: RolloutState) -> str:
    steps = len(driver.plan.weights)
    step = f"step {state.step + 1}/{steps}" if state.step >= 0 else "not started"
    return f"{state.phase} {step}, canary {state.weight}%: {state.reason}"


class PlainView:
    """One line per change of state, plus the metrics of the latest check (CI logs)."""

    def __init__(self, driver: Driver, stream: IO[str]) -> None:
        self._driver = driver
        self._stream = stream
        self._checks_shown = 0

    def __call__(self, state: RolloutState) -> None:
        lines = [_headline(self._driver, state)]
        checks = self._driver.record.checks
        for check in checks[self._checks_shown :]:
            for result in check.report.results:
                v = result.verdict
                lines.append(
                    f"  {check.kind} check {result.spec.name}: canary {v.canary} stable "
                    f"{v.stable} requests {v.canary_requests}/{v.stable_requests} -> "
                    f"{v.verdict} ({v.reason})"
                )
        self._checks_shown = len(checks)
        print("\n".join(lines), file=self._stream, flush=True)

    def close(self) -> None:
        """Nothing to tear down."""


class LiveView:
    """A live table of the steps and the latest metrics, redrawn in place on a terminal."""

    def __init__(self, driver: Driver, console: Console) -> None:
        self._driver = driver
        self._live = Live(self._render(driver.state), console=console, auto_refresh=False)
        self._live.start()

    def __call__(self, state: RolloutState) -> None:
        self._live.update(self._render(state), refresh=True)

    def close(self) -> None:
        """Leave the last frame on screen."""
        self._live.stop()

    def _render(self, state: RolloutState) -> Group:
        steps = Table(title="steps", show_edge=False)
        for weight in self._driver.plan.weights:
            steps.add_column(f"{weight}%", justify="center")
        steps.add_row(*(_mark(i, state) for i in range(len(self._driver.plan.weights))))
        metrics = Table(title="latest check", show_edge=False)
        for column in ("metric", "canary", "stable", "requests c/s", "verdict"):
            metrics.add_column(column)
        checks = self._driver.record.checks
        if checks:
            for result in checks[-1].report.results:
                v = result.verdict
                metrics.add_row(
                    result.spec.name,
                    _num(v.canary),
                    _num(v.stable),
                    f"{_num(v.canary_requests)}/{_num(v.stable_requests)}",
                    Text(str(v.verdict), style=_STYLE[v.verdict]),
                )
        return Group(Text(_headline(self._driver, state), style="bold"), steps, metrics)


def _mark(index: int, state: RolloutState) -> str:
    if index < state.step or (index == state.step and state.terminal):
        return "done"
    return "now" if index == state.step else ""


def _num(value: float | None) -> str:
    return "-" if value is None else f"{value:.4g}"


def make_view(driver: Driver, to_stderr: bool) -> View:
    """A live view when the chosen stream is a terminal, plain lines otherwise."""
    console = Console(stderr=to_stderr)
    if console.is_terminal:
        return LiveView(driver, console)
    return PlainView(driver, console.file)
