"""Is this switch on? ONE vocabulary for every boolean setting: the INI's keys, the environment's switches
(WEB_DEBUG, WEB_SECURE_COOKIES) and the yes/no answers the analyser returns.

The words are upstream's INI booleans (Python's configparser: 1/yes/true/on and 0/no/false/off, any case,
surrounding blanks ignored), the union of what upstream's contract accepts anywhere: its environment switches
took 1/true/yes, a subset. An INI value outside the vocabulary is an error naming the key (as upstream's
ValueError was); an environment switch that is not a "true" word is off (as upstream's were).
"""

from __future__ import annotations

from typing import Any, Optional

TRUE_WORDS = frozenset({"1", "yes", "true", "on"})
FALSE_WORDS = frozenset({"0", "no", "false", "off"})


def is_on(value: Any) -> bool:
    """Whether `value` switches something on: a bool as is, a number when non-zero, a string when a TRUE word;
    anything else (None, an unknown word) is off."""
    if isinstance(value, bool):
        return value
    if isinstance(value, (int, float)):
        return value != 0
    if isinstance(value, str):
        return value.strip().lower() in TRUE_WORDS
    return False


def parse_switch(value: Any) -> Optional[bool]:
    """A setting's value as a bool; None when it is not a word of the vocabulary (the caller names the key)."""
    if isinstance(value, bool):
        return value
    word = str(value).strip().lower()
    if word in TRUE_WORDS:
        return True
    if word in FALSE_WORDS:
        return False
    return None
