"""Six-field NCRONTAB schedules, as Azure Functions timer triggers declare them.

The Functions host reads ``schedule`` as ``{second} {minute} {hour} {day} {month} {day-of-week}``
(NCrontab with seconds).  The devhost needs the next occurrence of such a schedule to run
timer triggers without Core Tools, so this is a small parser for that one job.

Supported per field: ``*``, numbers, ranges ``a-b``, steps ``*/n``, ``a-b/n`` and ``a/n`` (from ``a``
to the field's maximum), comma lists of those, and month/day names (``JAN``, ``MON``).  Day of week
runs 0-6 with Sunday 0.  Like NCrontab, day-of-month and day-of-week must *both* match (unlike
Vixie cron, which fires when either does).  Times are whatever the caller passes: the devhost uses
UTC, the host's default.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

_MONTH_NAMES = {name: number for number, name in enumerate(
    ["JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"], start=1)}
_DAY_NAMES = {name: number for number, name in enumerate(["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"])}

# (field name, minimum, maximum, names) in schedule order.
_FIELDS: tuple[tuple[str, int, int, dict[str, int]], ...] = (
    ("second", 0, 59, {}),
    ("minute", 0, 59, {}),
    ("hour", 0, 23, {}),
    ("day", 1, 31, {}),
    ("month", 1, 12, _MONTH_NAMES),
    ("day-of-week", 0, 6, _DAY_NAMES),
)

# How far ahead to look before deciding a schedule can never fire (e.g. ``0 0 0 30 2 *``).
_SEARCH_YEARS = 5


class CronError(ValueError):
    """The schedule is not a valid six-field NCRONTAB expression; the message says which part."""


def _value(text: str, field: str, low: int, high: int, names: dict[str, int]) -> int:
    upper = text.upper()
    if upper in names:
        return names[upper]
    if not text.isdigit():
        raise CronError(f"{field} field: {text!r} is not a number")
    number = int(text)
    if not low <= number <= high:
        raise CronError(f"{field} field: {number} is outside {low}-{high}")
    return number


def _parse_field(text: str, field: str, low: int, high: int, names: dict[str, int]) -> frozenset[int]:
    values: set[int] = set()
    for part in text.split(","):
        if not part:
            raise CronError(f"{field} field: empty list element in {text!r}")
        base, slash, step_text = part.partition("/")
        step = 1
        if slash:
            if not step_text.isdigit() or int(step_text) == 0:
                raise CronError(f"{field} field: step {step_text!r} must be a positive number")
            step = int(step_text)
        if base == "*":
            start, end = low, high
        elif "-" in base:
            first, _, last = base.partition("-")
            start, end = _value(first, field, low, high, names), _value(last, field, low, high, names)
            if start > end:
                raise CronError(f"{field} field: range {base!r} runs backwards")
        else:
            start = _value(base, field, low, high, names)
            end = high if slash else start
        values.update(range(start, end + 1, step))
    return frozenset(values)


@dataclass(frozen=True)
class CronSchedule:
    """A parsed schedule: the set of allowed values for each of the six fields."""

    expression: str
    seconds: frozenset[int]
    minutes: frozenset[int]
    hours: frozenset[int]
    days: frozenset[int]
    months: frozenset[int]
    days_of_week: frozenset[int]

    @classmethod
    def parse(cls, expression: str) -> CronSchedule:
        """Parse ``sec min hour day month dow``; raise CronError naming the faulty field."""
        parts = expression.split()
        if len(parts) != len(_FIELDS):
            raise CronError(
                f"schedule {expression!r} has {len(parts)} fields; Azure Functions uses six: "
                "second minute hour day month day-of-week (e.g. '0 */5 * * * *')"
            )
        sets = [_parse_field(part, *spec) for part, spec in zip(parts, _FIELDS, strict=True)]
        return cls(expression, *sets)

    def _day_matches(self, moment: datetime) -> bool:
        # datetime.weekday() counts from Monday = 0; cron counts from Sunday = 0.
        return (
            moment.month in self.months
            and moment.day in self.days
            and (moment.weekday() + 1) % 7 in self.days_of_week
        )

    def next_after(self, moment: datetime) -> datetime:
        """The first firing time strictly after ``moment`` (whole seconds, same tzinfo).

        Skips whole months, days, hours and minutes that cannot match, so a sparse schedule
        costs a few hundred steps at most rather than one per second.
        """
        candidate = moment.replace(microsecond=0) + timedelta(seconds=1)
        limit = candidate + timedelta(days=366 * _SEARCH_YEARS)
        while candidate < limit:
            if candidate.month not in self.months:
                first = candidate.replace(day=1, hour=0, minute=0, second=0)
                candidate = (first + timedelta(days=32)).replace(day=1)  # first day of the next month
            elif not self._day_matches(candidate):
                candidate = candidate.replace(hour=0, minute=0, second=0) + timedelta(days=1)
            elif candidate.hour not in self.hours:
                candidate = candidate.replace(minute=0, second=0) + timedelta(hours=1)
            elif candidate.minute not in self.minutes:
                candidate = candidate.replace(second=0) + timedelta(minutes=1)
            elif candidate.second not in self.seconds:
                candidate += timedelta(seconds=1)
            else:
                return candidate
        raise CronError(f"schedule {self.expression!r} never fires within {_SEARCH_YEARS} years")
