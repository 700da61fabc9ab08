"""Durations as job files write them ("90s", "1h30m") and as vigil prints them."""

from __future__ import annotations

from datetime import timedelta

import pytest

from vigil.timeutil import format_duration, parse_duration


@pytest.mark.parametrize("text,seconds", [("90s", 90), ("30m", 1800), ("3h", 10800), ("7d", 604800),
                                          ("1h30m", 5400), ("2w", 1209600), (" 5M ", 300)])
def test_durations(text: str, seconds: int) -> None:
    assert parse_duration(text) == timedelta(seconds=seconds)


@pytest.mark.parametrize("text", ["", "3", "3x", "h", "1h 2x", "-5m", "3 hours"])
def test_bad_durations(text: str) -> None:
    with pytest.raises(ValueError, match="bad duration"):
        parse_duration(text)


@pytest.mark.parametrize("text", ["99999999999999d", "36501d", "9" * 5000 + "s"])
def test_durations_past_a_century_are_refused(text: str) -> None:
    with pytest.raises(ValueError, match="too long"):
        parse_duration(text)


def test_format_duration() -> None:
    assert format_duration(5) == "5s"
    assert format_duration(3725) == "1h2m"
