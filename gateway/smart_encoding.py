"""Smart encoding: look-alike characters replaced by GSM-7 ones, so one curly quote does not triple the cost.

Text pasted from a word processor carries curly quotes, long dashes, non-breaking spaces and the ellipsis;
each alone turns a GSM-7 body into UCS-2 (70 units a message instead of 160 septets). With
``SMS_SMART_ENCODING`` on, validation replaces them, but only when that makes the whole body GSM-7 in no more
segments than it had: a body that needs UCS-2 anyway (Cyrillic, an emoji) is sent exactly as written.

The table follows Twilio's Smart Encoding (TwilioDevEd/message-segment-calculator, ``SmartEncodingMap.ts``)
with four changes (docs/messages.md, "Smart encoding"): odd spaces and the tab become one space, not two or
seven; the single angle quotes keep their direction (Twilio's map swaps them); the line and paragraph
separators become a line feed; combining marks and control characters are not in it (a combining mark
belongs to the letter before it, and validation refuses control characters before this runs).
"""

from __future__ import annotations

from gateway.segments import count_segments, is_gsm7


def _each(replacement: str, characters: str) -> dict[str, str]:
    return dict.fromkeys(characters, replacement)


def _one_to_one(looks: str, means: str) -> dict[str, str]:
    """Each character of ``looks`` replaced by the one in the same place in ``means`` (equal lengths, or it raises)."""
    return {chr(look): chr(mean) for look, mean in str.maketrans(looks, means).items()}


LOOK_ALIKES: dict[str, str] = {
    **_each('"', "\u00ab\u00bb\u201c\u201d\u02ba\u02ee\u201f\u201e\u275d\u275e\u301d\u301e\uff02"),
    **_each("'", "\u2018\u2019\u02bb\u02c8\u02bc\u02bd\u02b9\u201b\uff07\u00b4\u02ca\u0060\u02cb\u275b\u275c"
                 "\ufe10\ufe11"),
    **_each("/", "\u00f7\u29f8\u2044\u2215\uff0f"),
    "\u00bc": "1/4", "\u00bd": "1/2", "\u00be": "3/4",
    **_each("\\", "\u29f9\u29f5\ufe68\uff3c"),
    **_each("_", "\uff3f\u2017"),
    **_each("|", "\u2223\uff5c\u23b8\u23b9\u23d0\u239c\u239f"),
    **_each("-", "\u23bc\u23bd\u2015\ufe63\uff0d\u2010\u2043\u2014\u2013\u2022"),
    **_each("@", "\ufe6b\uff20"),
    **_each("$", "\ufe69\uff04"),
    **_each("!", "\u01c3\ufe15\ufe57\uff01"),
    "\u203c": "!!",
    **_each("#", "\ufe5f\uff03"),
    **_each("%", "\ufe6a\uff05"),
    **_each("&", "\ufe60\uff06"),
    **_each(",", "\u201a\ufe50\ufe51\uff0c\uff64\u3001"),
    **_each("(", "\u2768\u276a\ufe59\uff08\u27ee\u2985"),
    **_each(")", "\u2769\u276b\ufe5a\uff09\u27ef\u2986"),
    **_each("*", "\u204e\u2217\u229b\u2722\u2723\u2724\u2725\u2731\u2732\u2733\u273a\u273b\u273c\u273d\u2743"
                 "\u2749\u274a\u274b\u29c6\ufe61\uff0a"),
    **_each("+", "\u02d6\ufe62\uff0b"),
    **_each(".", "\u3002\ufe52\uff0e\uff61"),
    "\u2026": "...",
    **_one_to_one("\uff10\uff11\uff12\uff13\uff14\uff15\uff16\uff17\uff18\uff19", "0123456789"),  # fullwidth
    **_each(":", "\u02d0\u02f8\u2982\ua789\ufe13\uff1a"),
    **_each(";", "\u204f\ufe14\ufe54\uff1b"),
    **_each("<", "\ufe64\uff1c\u2039"),
    **_each("=", "\ua78a\ufe66\uff1d"),
    **_each(">", "\ufe65\uff1e\u203a"),
    **_each("?", "\ufe16\ufe56\uff1f"),
    **_one_to_one("\uff21\uff22\uff23\uff24\uff25\uff26\uff27\uff28\uff29\uff2a\uff2b\uff2c\uff2d\uff2e\uff2f"
                  "\uff30\uff31\uff32\uff33\uff34\uff35\uff36\uff37\uff38\uff39\uff3a",
                  "ABCDEFGHIJKLMNOPQRSTUVWXYZ"),  # fullwidth
    **_one_to_one("\u1d00\u0299\u1d04\u1d05\u1d07\ua730\u0262\u029c\u026a\u1d0a\u1d0b\u029f\u1d0d\u0274\u1d0f"
                  "\u1d18\u0280\ua731\u1d1b\u1d1c\u1d20\u1d21\u028f\u1d22",
                  "ABCDEFGHIJKLMNOPRSTUVWYZ"),  # small capitals: there are none for Q and X
    **_each("^", "\u02c6\uff3e"),
    **_each("{", "\u2774\ufe5b\uff5b"),
    **_each("}", "\u2775\ufe5c\uff5d"),
    "\uff3b": "[", "\uff3d": "]",
    **_each("~", "\u02dc\u02f7\u223c\uff5e"),
    **_each(" ", "\t\u00a0\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a\u202f\u205f\u3000"),
    **_each("\n", "\u2028\u2029"),
    **_each("", "\u200b\u2060\ufeff"),  # zero-width: nothing to see, nothing to send
}
_TABLE = str.maketrans(LOOK_ALIKES)


def smart_encode(body: str) -> str | None:
    """``body`` with its look-alikes replaced, when that makes it GSM-7 in no more segments; None to keep it.

    A body of zero-width characters alone is kept too: replacing them would send nothing.
    """
    if is_gsm7(body):
        return None
    replaced = body.translate(_TABLE)
    if not replaced.strip() or not is_gsm7(replaced):
        return None
    return replaced if count_segments(replaced).segments <= count_segments(body).segments else None
