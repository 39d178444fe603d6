"""The monitor's parts without a model: the database (SQLite file and a real PostgreSQL server), the alert
rules and their debounce on synthetic window sequences, window cutting on synthetic tracked frames, and the
one-line errors for bad input."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import numpy as np
import pytest

from maskwatch.apps.monitor.alerts import DEFAULT_RULES, Rule, RuleEngine, load_rules
from maskwatch.apps.monitor.windows import WindowAggregator
from maskwatch.apps.store import SCHEMA_VERSION, Window, alerts, iso, open_store, parse_time, windows
from maskwatch.cli import main
from maskwatch.detections import Detections
from maskwatch.errors import MaskwatchError
from maskwatch.video.sources import Frame

T0 = parse_time("2026-11-23T10:00:00Z")
CLASSES = ("with_mask", "no_mask")


def window(i: int, people: int, share: float, camera: str = "door", length: int = 60) -> Window:
    unmasked = round(people * share)
    return Window(
        camera, iso(T0 + i * length), iso(T0 + (i + 1) * length), 10, 10, 10, 0, people, unmasked, share
    )


def test_iso_round_trip() -> None:
    assert iso(T0) == "2026-11-23T10:00:00Z"
    assert iso(T0 + 9.72) == "2026-11-23T10:00:09.720Z"
    assert parse_time("2026-11-23T11:00:00+01:00") == T0 == parse_time("2026-11-23T10:00:00")
    with pytest.raises(MaskwatchError, match="ISO 8601"):
        parse_time("yesterday")


def test_debounce_one_alert_per_episode_with_its_end() -> None:
    """small-group over 25 % for three windows (peaks at 0.75) then clears, comes back later: two episodes.
    A window with nobody never fires; a crowd has its own, stricter rule."""
    engine = RuleEngine(DEFAULT_RULES)
    shares = [0.0, 0.5, 0.75, 0.5, 0.25, 0.0, 0.5]
    events = [(i, e.kind, e.episode.rule) for i, s in enumerate(shares) for e in engine.feed(window(i, 4, s))]
    assert events == [
        (1, "open", "small-group"),
        (2, "update", "small-group"),
        (3, "update", "small-group"),
        (4, "close", "small-group"),  # 0.25 is not *above* 0.25
        (6, "open", "small-group"),
    ]
    assert engine.feed(window(7, 0, 0.0))[0].kind == "close"
    crowd = [e.kind for e in engine.feed(window(8, 10, 0.1)) if e.episode.rule == "crowd"]
    assert crowd == ["open"]
    closed = engine.finish("door")
    assert [(e.kind, e.episode.rule, e.episode.end_time) for e in closed] == [
        ("close", "crowd", iso(T0 + 540))
    ]


def test_closed_episode_keeps_peak_and_end_of_last_firing_window() -> None:
    engine = RuleEngine([Rule("any", max_unmasked_share=0.0, min_people=1)])
    engine.feed(window(0, 2, 0.5))
    engine.feed(window(1, 3, 1.0))
    (event,) = engine.feed(window(2, 3, 0.0))
    ep = event.episode
    assert (ep.start_time, ep.end_time, ep.peak_unmasked_share, ep.people) == (
        iso(T0),
        iso(T0 + 120),
        1.0,
        3,
    )


def test_rules_yaml(tmp_path: Path) -> None:
    good = tmp_path / "rules.yaml"
    good.write_text("alerts:\n  - name: strict\n    min_people: 2\n    max_unmasked_share: 0\n")
    assert load_rules(good) == (Rule("strict", 0.0, 2, None),)
    assert load_rules(None) == DEFAULT_RULES
    cases = {
        "alerts: [": "not valid YAML",
        "rules: []": "under 'alerts:'",
        "alerts:\n  - name: x\n": "needs max_unmasked_share",
        "alerts:\n  - max_unmasked_share: high\n": "rule 1",
        "alerts:\n  - max_unmasked_share: 0.1\n    colour: red\n": "unknown key",
        "alerts:\n  - {max_unmasked_share: 0.1, min_people: 5, max_people: 2}\n": "max_people 2 <",
    }
    for text, message in cases.items():
        good.write_text(text)
        with pytest.raises(MaskwatchError, match=message):
            load_rules(good)


def tracked(ids: list[int], unmasked: list[bool], labels: list[int]) -> Detections:
    boxes = np.array([[10.0 * i, 0, 10.0 * i + 8, 8] for i in range(len(ids))]).reshape(-1, 4)
    dets = Detections(boxes, [0.9] * len(ids), labels, CLASSES, np.array(ids))
    dets.data["unmasked"] = np.array(unmasked, dtype=bool)
    return dets


def test_windows_from_live_frames_align_on_the_clock() -> None:
    """Live frames carry wall-clock timestamps: windows start on multiples of the window length, people
    are distinct confirmed ids (-1 is not a person), and unmasked people are those the rule flags."""
    out: list[tuple] = []
    agg = WindowAggregator("gate", 10.0, out.append, keep_detections=True)
    start = T0 + 7.5  # the first window is partial: 10:00:00 to 10:00:10
    for i in range(30):  # 2 frames per second for 15 s
        dets = tracked([1, 2, -1], [i >= 20, False, False], [1 if i >= 18 else 0, 0, 1])
        agg.add(Frame(i, i / 2, np.zeros((8, 8, 3), np.uint8), timestamp=start + i / 2), dets)
    agg.finish()
    wins = [e[1] for e in out if e[0] == "window"]
    assert [(w.start_time, w.end_time, w.frames) for w in wins] == [
        ("2026-11-23T10:00:00Z", "2026-11-23T10:00:10Z", 5),
        ("2026-11-23T10:00:10Z", "2026-11-23T10:00:20Z", 20),
        ("2026-11-23T10:00:20Z", "2026-11-23T10:00:22Z", 5),  # the last, partial: ends at its last frame
    ]
    assert [(w.people, w.people_no_mask, w.unmasked_share) for w in wins] == [
        (2, 0, 0.0),
        (2, 1, 0.5),
        (2, 1, 0.5),
    ]
    assert [(w.faces, w.no_mask) for w in wins] == [(15, 5), (60, 20 + 7), (15, 5 + 5)]
    rows = [e[2] for e in out if e[0] == "window"]
    assert [len(r) for r in rows] == [15, 60, 15] and rows[0][0]["time"] == "2026-11-23T10:00:07.500Z"


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.slow)])  # initdb takes seconds
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return str(tmp_path / "monitor.sqlite")
    return request.getfixturevalue("postgres_url")


def test_store_idempotent_and_alert_episode(db_url: str) -> None:
    """The same on SQLite and a real PostgreSQL: a window is stored once (its detections too), an episode
    once, and its peak and end are updated in place."""
    store = open_store(db_url)
    w = window(0, 4, 0.5)
    det = {"time": w.start_time, "frame": 0, "x1": 1.0, "y1": 2.0, "x2": 3.0, "y2": 4.0}
    rows = [det | {"label": "no_mask", "score": 0.9, "track": 1}]
    with store.engine.begin() as conn:
        assert store.write_window(w, rows, conn)
        assert store.open_alert("door", "small-group", w.start_time, 0.5, 4, conn)
    with store.engine.begin() as conn:
        assert not store.write_window(w, rows, conn)
        assert not store.open_alert("door", "small-group", w.start_time, 0.5, 4, conn)
        store.update_alert("door", "small-group", w.start_time, 0.75, 5, None, conn)
        store.update_alert("door", "small-group", w.start_time, 0.6, 3, "2026-11-23T10:03:00Z", conn)
    assert store.read(windows) == [w.__dict__]
    (alert,) = store.read(alerts)
    assert alert["end_time"] == "2026-11-23T10:03:00Z"
    assert (alert["peak_unmasked_share"], alert["people"]) == (0.75, 5)
    from maskwatch.apps.store import detections

    assert len(store.read(detections)) == 1
    store.close()
    # Opening again keeps everything (the schema is at its version, nothing re-created).
    again = open_store(db_url)
    assert len(again.read(windows)) == 1
    again.close()


def test_database_errors_are_one_line(tmp_path: Path) -> None:
    junk = tmp_path / "junk.sqlite"
    junk.write_bytes(b"this is not a database" * 100)
    with pytest.raises(MaskwatchError, match="cannot use the database"):
        open_store(junk)
    newer = tmp_path / "newer.sqlite"
    open_store(newer).close()
    with sqlite3.connect(newer) as conn:
        conn.execute("UPDATE schema_version SET version = ?", (SCHEMA_VERSION + 1,))
    with pytest.raises(MaskwatchError, match="newer than this maskwatch"):
        open_store(newer)
    locked = tmp_path / "locked.sqlite"
    holder = sqlite3.connect(locked, isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    try:
        with pytest.raises(MaskwatchError, match="locked"):
            open_store(locked, timeout=0.2)
    finally:
        holder.rollback()
        holder.close()
    foreign = tmp_path / "foreign.sqlite"
    with sqlite3.connect(foreign) as conn:
        conn.execute("CREATE TABLE windows (x INT)")
    with pytest.raises(MaskwatchError, match="no schema_version"):
        open_store(foreign)
    assert junk.read_bytes() == b"this is not a database" * 100  # never touched


def test_cli_bad_input_is_one_line_before_any_model(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    clip = tmp_path / "a.mp4"
    clip.write_bytes(b"x")
    bad_rules = tmp_path / "r.yaml"
    bad_rules.write_text("alerts: [")
    cases = [
        ([str(tmp_path / "missing.mp4")], "no such file"),
        ([str(clip), "--window", "0"], "--window 0"),
        ([str(clip), "--camera", "a", "--camera", "b"], "2 --camera names for 1 sources"),
        ([str(clip), str(clip)], "two sources would be camera 'a'"),
        ([str(clip), "--rules", str(bad_rules)], "not valid YAML"),
        ([str(clip), "--notify", "nonsense"], "not a notification URL"),
        ([str(clip), "--start-time", "noon"], "not an ISO 8601 time"),
        ([str(clip), "--db", str(tmp_path / "no" / "dir" / "m.sqlite")], "does not exist"),
        ([str(clip), "--workers", "0"], "--workers 0"),
        ([str(clip), "--min-face", "-4"], "--min-face -4"),
        ([str(clip), "--imgsz", "8"], "--imgsz 8"),
    ]
    for args, message in cases:
        assert main(["monitor", *args]) == 1
        err = capsys.readouterr().err
        assert err.startswith("maskwatch: error:") and message in err and err.count("\n") == 1, err
