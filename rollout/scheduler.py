"""APScheduler wiring: when each rollout's jobs run. Nothing here decides anything.

Each rollout gets two jobs:
- the *step job*, a one-shot timer armed for the moment the current step's analysis is due
  (re-armed after every change of state), so a step starts on time rather than at the next
  poll;
- the *guard job*, every few seconds: re-asserts the weight the state says (level-triggered
  convergence), checks the guard's severe-breach limits, and renews the run's lock.
Misfires are coalesced (a late job runs once, not once per missed period), a job never
overlaps itself, and jobs run on a thread pool, so one slow rollout never delays another.
"""

from collections.abc import Callable
from datetime import datetime, timedelta

import structlog
from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.schedulers.background import BackgroundScheduler

from rollout.driver import Driver
from rollout.engine import RolloutState

log = structlog.get_logger(__name__)

# Two jobs per rollout plus headroom: a rollout waiting on a slow Prometheus holds its own
# threads only.
DEFAULT_WORKERS = 16


class RolloutScheduler:
    """Runs the step and guard jobs of any number of rollouts."""

    def __init__(self, workers: int = DEFAULT_WORKERS) -> None:
        self._scheduler = BackgroundScheduler(
            executors={"default": ThreadPoolExecutor(workers)},
            job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": None},
            timezone="UTC",
        )

    def start(self) -> None:
        """Start the scheduler thread."""
        self._scheduler.start()

    def shutdown(self) -> None:
        """Stop scheduling and wait for running jobs to finish."""
        self._scheduler.shutdown(wait=True)

    def add(self, key: str, driver: Driver, guard_interval: timedelta) -> None:
        """Schedule `driver`'s jobs under `key`; the step job follows its state from now on."""
        self._scheduler.add_job(
            _logged(key, driver.guard),
            "interval",
            seconds=guard_interval.total_seconds(),
            id=_guard_id(key),
            next_run_time=datetime.now().astimezone(),
        )
        driver.on_change(lambda _state: self._arm_step(key, driver))
        self._arm_step(key, driver)

    def remove(self, key: str) -> None:
        """Stop scheduling `key`'s jobs (a finished rollout, or one that left our hands)."""
        for job_id in (_guard_id(key), _step_id(key)):
            if self._scheduler.get_job(job_id) is not None:
                self._scheduler.remove_job(job_id)

    def _arm_step(self, key: str, driver: Driver) -> None:
        """(Re)arm the one-shot step job for the current step's due time, or drop it."""
        due = driver.next_due()
        job_id = _step_id(key)
        if due is None:
            if self._scheduler.get_job(job_id) is not None:
                self._scheduler.remove_job(job_id)
            return
        self._scheduler.add_job(
            _logged(key, driver.tick),
            "date",
            run_date=due,
            id=job_id,
            replace_existing=True,
        )


def _logged(key: str, job: Callable[[], RolloutState]) -> Callable[[], None]:
    """A job that logs instead of killing the scheduler thread when something unforeseen
    breaks; the next run of the job tries again from the stored state."""

    def run() -> None:
        try:
            job()
        except Exception:
            log.exception("scheduler.job_failed", rollout=key)

    return run


def _guard_id(key: str) -> str:
    return f"{key}/guard"


def _step_id(key: str) -> str:
    return f"{key}/step"
