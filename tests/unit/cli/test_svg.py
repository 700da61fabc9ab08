"""The SVG writer of the report and fleet pages: pure functions, text always escaped."""

from __future__ import annotations

from xml.etree import ElementTree

from hypothesis import given
from hypothesis import strategies as st

from vigil.cli.svg import Event, Point, esc, nice_ticks, time_plot, time_ticks, timeline

SVG = "{http://www.w3.org/2000/svg}"


def _parse(markup: str) -> ElementTree.Element:
    # The writer leaves the namespace to the HTML page; XML needs it said.
    return ElementTree.fromstring(markup.replace("<svg ", '<svg xmlns="http://www.w3.org/2000/svg" '
                                                 'xmlns:xlink="http://www.w3.org/1999/xlink" ', 1))


@given(st.text(st.characters(blacklist_characters="\r")))  # XML reads a CR as a newline
def test_any_text_in_a_plot_stays_text(text):
    markup = time_plot([Point(1e9, 5.0, "failed", text), Point(1e9 + 60, 7.0, "success", text)],
                       label=text, fmt=lambda v: text)
    root = _parse(markup)  # well-formed whatever the text
    shown = "".join(c if c in "\t\n" or (c >= " " and c != "\x7f" and not "\ud800" <= c <= "\udfff")
                    else f"\\x{ord(c):02x}" for c in text)
    assert root.find(f"{SVG}title").text == (shown or None)  # unprintable characters shown as escapes
    assert not [e for e in root.iter() if e.tag in (f"{SVG}script", "script", f"{SVG}foreignObject")]


def test_markup_in_an_error_is_escaped():
    markup = time_plot([Point(1e9, None, "died", "<script>alert(1)</script>")], label="x", fmt=str)
    assert "<script>" not in markup and "&lt;script&gt;alert(1)&lt;/script&gt;" in markup
    assert esc('"a" & <b>') == "&quot;a&quot; &amp; &lt;b&gt;"


def test_each_outcome_has_its_own_mark():
    points = [Point(1e9 + i * 600, float(i), o, o) for i, o in
              enumerate(["success", "failed", "died", "interrupted", "skipped"])]
    root = _parse(time_plot(points, label="x", fmt=str))
    uses = [e for e in root.iter(f"{SVG}use")]
    assert [u.get("class") for u in uses] == ["mark success", "mark failed", "mark died", "mark interrupted",
                                              "mark skipped"]
    assert [u.get("href") for u in uses] == ["#mk-success", "#mk-failed", "#mk-died", "#mk-interrupted",
                                             "#mk-skipped"]


def test_a_point_without_a_value_sits_on_the_baseline_and_an_empty_plot_says_so():
    root = _parse(time_plot([Point(1e9, None, "failed", "f"), Point(1e9 + 60, 10.0, "success", "s")],
                            label="x", fmt=str))
    failed, success = root.iter(f"{SVG}use")
    assert float(failed.get("y")) > float(success.get("y"))  # lower on the page
    assert "no runs in the period" in time_plot([], label="x", fmt=str)


@given(st.floats(0, 1e12), st.floats(1, 1e12))
def test_value_ticks_are_round_and_cover_the_range(lo, width):
    ticks = nice_ticks(lo, lo + width)
    assert 2 <= len(ticks) <= 12 and ticks == sorted(ticks)
    assert all(lo - 1e-6 * width <= t <= lo + width * (1 + 1e-6) for t in ticks)


def test_time_ticks_fall_on_round_times():
    day = 86400
    assert all(t % day == 0 for t in time_ticks(1e9, 1e9 + 30 * day))
    assert all(t % 3600 == 0 for t in time_ticks(1e9, 1e9 + 12 * 3600))


def test_timeline_draws_rules_and_marks():
    root = _parse(timeline([Event(1e9, "now", rule="now"), Event(1e9 - 3600, "<run>", outcome="failed")],
                           label="j"))
    assert [e.get("class") for e in root.iter(f"{SVG}line")][-1] == "rule now"
    assert [u.get("class") for u in root.iter(f"{SVG}use")] == ["mark failed"]
