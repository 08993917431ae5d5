"""The keywords a recipient texts to withdraw consent, give it again, or ask for help.

Twilio's default keywords on long codes and toll-free numbers (opt-out ``STOP, STOPALL, UNSUBSCRIBE, CANCEL, END,
QUIT``, with ``REVOKE, OPTOUT`` in its current tutorial; opt-in ``START, YES, UNSTOP``; help ``HELP, INFO``) cover
the words the FCC's 2025 rule (FCC 24-24) says revoke consent on their own (``stop, quit, end, revoke, opt out,
cancel, unsubscribe``). Only a message that is the keyword alone counts, as at Twilio: trimmed, in any case, with
runs of spaces inside (``OPT  OUT``) read as one; ``stop please`` or ``S T O P`` is an ordinary reply.
"""

from __future__ import annotations

import enum

OPT_OUT = frozenset({"STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT", "REVOKE", "OPTOUT", "OPT OUT"})
OPT_IN = frozenset({"START", "YES", "UNSTOP"})
HELP = frozenset({"HELP", "INFO"})


class Keyword(enum.StrEnum):
    """What a keyword message asks for."""

    OPT_OUT = "OptOut"  # add (licensee, number) to the licensee's suppression list
    OPT_IN = "OptIn"  # take it off again
    HELP = "Help"  # recorded only: the provider answers it, the gateway sends nothing


def classify(body: str | None) -> Keyword | None:
    """The keyword ``body`` is, or None when it is anything else (a reply like any other)."""
    if not body:
        return None
    word = " ".join(body.split()).upper()
    if word in OPT_OUT:
        return Keyword.OPT_OUT
    if word in OPT_IN:
        return Keyword.OPT_IN
    if word in HELP:
        return Keyword.HELP
    return None
