"""Timer triggers: each timer-triggered function called on its NCRONTAB schedule (UTC), as the host does."""

from __future__ import annotations

import logging
import threading
import traceback
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from azure.functions.timer import TimerRequest

from devhost.cron import CronSchedule
from devhost.functions import FunctionSpec, invoke

logger = logging.getLogger(__name__)

# A timer invocation later than this after its scheduled second is reported as past due.
PAST_DUE_TOLERANCE = timedelta(seconds=1)


class TimerRunner:
    """Calls one timer-triggered function on its schedule, one invocation at a time like the host.

    Occurrences missed while the function ran long collapse into one past-due invocation.
    """

    def __init__(self, spec: FunctionSpec, schedule: CronSchedule, run_on_startup: bool,
                 clock: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        self.spec = spec
        self.schedule = schedule
        self.run_on_startup = run_on_startup
        self._clock = clock
        self._stop = threading.Event()
        self._last: datetime | None = None
        self._thread = threading.Thread(target=self._run, name=f"timer-{spec.name}", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()

    def _run(self) -> None:
        now = self._clock()
        due = self.schedule.next_after(now)
        if self.run_on_startup:
            self._fire(now, due, past_due=False)
        while not self._stop.is_set():
            wait = (due - self._clock()).total_seconds()
            if wait > 0:
                if self._stop.wait(min(wait, 1.0)):
                    return
                continue
            now = self._clock()
            following = self.schedule.next_after(max(now, due))
            self._fire(now, following, past_due=now - due > PAST_DUE_TOLERANCE)
            due = following

    def _fire(self, now: datetime, following: datetime, past_due: bool) -> None:
        status = {"Last": (self._last or now).isoformat(), "Next": following.isoformat(),
                  "LastUpdated": now.isoformat()}
        self._last = now
        try:
            invoke(self.spec, TimerRequest(past_due=past_due, schedule_status=status, schedule={"AdjustForDST": True}))
        except Exception:
            logger.error("Function %s failed:\n%s", self.spec.name, traceback.format_exc().rstrip())
        else:
            logger.info("Function %s ran (timer%s)", self.spec.name, ", past due" if past_due else "")

