"""``maskwatch report`` on a real SQLite database shaped like the monitor's (windows + alerts tables), with
synthetic but realistic traffic: three cameras over two days, a daily rhythm, a camera that is off at
night, bursts of unmasked people that the monitor's default rules turn into debounced alert episodes (the
last one still open). The numbers on the page are checked against sums computed here from the rows."""

from __future__ import annotations

import re
import sqlite3
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
import sqlalchemy as sa

from maskwatch.apps.report import build_report, fmt_time, load_report_data, open_database
from maskwatch.cli import main
from tests.media import screenshot

UTC = timezone.utc
DAY0 = datetime(2026, 11, 23, tzinfo=UTC)
WINDOW = timedelta(minutes=5)
# name, mean people at the busiest hour, unmasked share outside incidents, hours on, incidents (start h, h)
CAMERAS = (
    ("entrance", 6.0, 0.02, range(0, 24), ((9.0, 1.5), (30.0, 2.0), (46.5, 1.5))),
    ("canteen", 9.0, 0.005, range(6, 22), ((12.0, 1.0),)),
    ("warehouse", 3.0, 0.05, range(7, 19), ()),
)
RULES = (("small-group", 1, 5, 0.25), ("crowd", 6, None, 0.05))  # the monitor's defaults


def iso(t: datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


def schema() -> tuple[sa.MetaData, sa.Table, sa.Table]:
    """The tables as the helpers' contract defines them (the monitor creates them the same way)."""
    md = sa.MetaData()
    windows = sa.Table(
        "windows", md,
        sa.Column("camera", sa.Text, primary_key=True), sa.Column("start_time", sa.Text, primary_key=True),
        sa.Column("end_time", sa.Text), sa.Column("frames", sa.Integer), sa.Column("faces", sa.Integer),
        sa.Column("with_mask", sa.Integer), sa.Column("no_mask", sa.Integer), sa.Column("people", sa.Integer),
        sa.Column("people_no_mask", sa.Integer), sa.Column("unmasked_share", sa.Float),
    )  # fmt: skip
    alerts = sa.Table(
        "alerts", md,
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True), sa.Column("camera", sa.Text),
        sa.Column("rule", sa.Text), sa.Column("start_time", sa.Text),
        sa.Column("end_time", sa.Text, nullable=True),
        sa.Column("peak_unmasked_share", sa.Float), sa.Column("people", sa.Integer),
    )  # fmt: skip
    sa.Table("schema_version", md, sa.Column("version", sa.Integer))
    return md, windows, alerts


def fires(people: int, share: float) -> str | None:
    for name, lo, hi, max_share in RULES:
        if people >= lo and (hi is None or people <= hi) and share > max_share:
            return name
    return None


def make_db(path: Path, seed: int = 0) -> tuple[list[dict], list[dict]]:
    """Write the database; return its window and alert rows (the ground truth the tests sum up)."""
    rng = np.random.default_rng(seed)
    windows, alerts = [], []
    for camera, peak, base, hours, incidents in CAMERAS:
        episode: dict | None = None
        for k in range(int(timedelta(days=2) / WINDOW)):
            t = DAY0 + k * WINDOW
            h = t.hour + t.minute / 60
            if t.hour not in hours:
                if episode:  # camera switched off: the episode ends with its last window
                    alerts.append(episode)
                    episode = None
                continue
            rhythm = max(0.1, np.sin(np.pi * (h - 6) / 14)) if 6 <= h < 20 else 0.1
            people = int(rng.poisson(peak * rhythm))
            hour_since = (t - DAY0).total_seconds() / 3600
            p = 0.6 if any(s <= hour_since < s + n for s, n in incidents) else base
            unmasked = int(rng.binomial(people, p))
            frames = 1500
            faces = int(people * frames * 0.8)
            no_mask = int(unmasked * frames * 0.7)
            share = unmasked / people if people else 0.0
            windows.append(
                dict(camera=camera, start_time=iso(t), end_time=iso(t + WINDOW), frames=frames, faces=faces,
                     with_mask=faces - no_mask, no_mask=no_mask, people=people, people_no_mask=unmasked,
                     unmasked_share=share)
            )  # fmt: skip
            rule = fires(people, share)
            if rule and episode is None:
                episode = dict(camera=camera, rule=rule, start_time=iso(t), end_time=None,
                               peak_unmasked_share=share, people=people)  # fmt: skip
            elif rule and episode is not None:
                episode["peak_unmasked_share"] = max(episode["peak_unmasked_share"], share)
                episode["people"] = max(episode["people"], people)
            elif episode is not None:
                episode["end_time"] = iso(t)
                alerts.append(episode)
                episode = None
        if episode:  # still over the threshold when the data ends: an open episode
            alerts.append(episode)
    md, wt, at = schema()
    engine = sa.create_engine(f"sqlite:///{path}")
    with engine.begin() as conn:
        conn.exec_driver_sql("PRAGMA journal_mode=WAL")
        md.create_all(conn)
        conn.execute(wt.insert(), windows)
        conn.execute(at.insert(), alerts)
    engine.dispose()
    return windows, alerts


@pytest.fixture(scope="module")
def db(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[dict], list[dict]]:
    path = tmp_path_factory.mktemp("db") / "monitor.sqlite"
    windows, alerts = make_db(path)
    return path, windows, alerts


class Tables(HTMLParser):
    """The page's tables as rows of cell texts, by table id."""

    def __init__(self) -> None:
        super().__init__()
        self.tables: dict[str, list[list[str]]] = {}
        self.current: str | None = None
        self.cell: list[str] | None = None
        self.links: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        self.links += [v for k, v in attrs if k in ("src", "href") and v]
        if tag == "table":
            self.current = a.get("id")
            self.tables[self.current or ""] = []
        elif tag == "tr" and self.current:
            self.tables[self.current].append([])
        elif tag in ("td", "th") and self.current:
            self.cell = []

    def handle_endtag(self, tag: str) -> None:
        if tag in ("td", "th") and self.cell is not None and self.current:
            self.tables[self.current][-1].append(" ".join("".join(self.cell).split()))
            self.cell = None
        elif tag == "table":
            self.current = None

    def handle_data(self, data: str) -> None:
        if self.cell is not None:
            self.cell.append(data)


def tables(page: str) -> Tables:
    parser = Tables()
    parser.feed(page)
    return parser


def summary(page: str) -> dict[str, dict[str, str]]:
    rows = tables(page).tables["summary"]
    header = rows[0]
    return {r[0]: dict(zip(header, r, strict=True)) for r in rows[1:]}


def expected(windows: list[dict], alerts: list[dict], camera: str, lo: datetime, hi: datetime) -> dict:
    """The summary row computed straight from the rows, independently of the report's code."""
    rows = [w for w in windows if w["camera"] == camera and iso(lo) <= w["start_time"] < iso(hi)]
    people = sum(w["people"] for w in rows)
    unmasked = sum(w["people_no_mask"] for w in rows)
    by_hour: dict[int, list[int]] = {}
    for w in rows:
        by_hour.setdefault(int(w["start_time"][11:13]), []).append(w["people"])
    busiest = max(by_hour, key=lambda h: sum(by_hour[h]) / len(by_hour[h]))
    n_alerts = sum(
        a["camera"] == camera
        and a["start_time"] < iso(hi)
        and (a["end_time"] is None or a["end_time"] > iso(lo))
        for a in alerts
    )
    return {
        "people counted*": f"{people:,}",
        "peak in a window": f"{max(w['people'] for w in rows):,}",
        "unmasked share": f"{100 * unmasked / people:.1f}%",
        "alerts": n_alerts,
        "busiest hour (UTC)": f"{busiest:02d}:00–{busiest + 1:02d}:00",
        "windows": len(rows),
    }


def check_row(row: dict[str, str], exp: dict) -> None:
    for key in ("people counted*", "peak in a window", "unmasked share", "busiest hour (UTC)"):
        assert row[key] == exp[key], key
    assert int(row["alerts"].split()[0]) == exp["alerts"]


def test_summary_numbers_match_the_rows(db: tuple[Path, list[dict], list[dict]]) -> None:
    path, windows, alerts = db
    page = build_report(path)
    rows = summary(page)
    assert set(rows) == {"entrance", "canteen", "warehouse"}
    far = (DAY0 - timedelta(days=1), DAY0 + timedelta(days=3))
    for camera in rows:
        check_row(rows[camera], expected(windows, alerts, camera, *far))
    # worst camera first, and named in the headline with the overall share and the alert count
    shares = {c: float(rows[c]["unmasked share"].rstrip("%")) for c in rows}
    assert list(rows) == sorted(shares, key=lambda c: -shares[c])
    worst = next(iter(rows))
    assert f"<div class=value>{worst}</div>" in page
    total = sum(w["people_no_mask"] for w in windows) / sum(w["people"] for w in windows)
    assert f"<div class=value>{100 * total:.1f}%</div>" in page
    assert f"<div class=value>{len(alerts)}</div>" in page
    # the alert table lists every episode, the open one marked as ongoing
    listed = tables(page).tables["alerts"][1:]
    assert len(listed) == len(alerts) >= 4
    open_ones = [a for a in alerts if a["end_time"] is None]
    assert len(open_ones) >= 1
    assert sum(r[3] == "ongoing" for r in listed) == len(open_ones)


def test_camera_and_period_filters(db: tuple[Path, list[dict], list[dict]]) -> None:
    path, windows, alerts = db
    lo, hi = DAY0 + timedelta(hours=8), DAY0 + timedelta(hours=14)
    page = build_report(path, cameras=["entrance", "warehouse"], start="2026-11-23T08:00:00Z", end=iso(hi))
    rows = summary(page)
    assert set(rows) == {"entrance", "warehouse"}
    for camera in rows:
        check_row(rows[camera], expected(windows, alerts, camera, lo, hi))
    assert "canteen" not in page
    offset = build_report(path, cameras=["entrance", "warehouse"], start="2026-11-23T09:00+01:00", end=hi)
    assert summary(offset) == rows  # the same instant written with an offset
    listed = tables(page).tables["alerts"][1:]
    assert {r[0] for r in listed} <= {"entrance", "warehouse"}
    assert len(listed) == sum(expected(windows, alerts, c, lo, hi)["alerts"] for c in rows)
    # a bare --to date is the whole of that day
    day = build_report(path, cameras=["canteen"], start="2026-11-23", end="2026-11-23")
    check_row(summary(day)["canteen"], expected(windows, alerts, "canteen", DAY0, DAY0 + timedelta(days=1)))
    data = load_report_data(open_database(path)[0], ["canteen"], DAY0, DAY0 + timedelta(days=1))
    assert data.windows == expected(windows, alerts, "canteen", DAY0, DAY0 + timedelta(days=1))["windows"]


def test_empty_period_and_camera_without_windows(db: tuple[Path, list[dict], list[dict]]) -> None:
    path, _, _ = db
    page = build_report(path, start="2026-01-01", end="2026-01-02")  # a bare end date: all that day
    assert "No windows between Thu 01 Jan 2026 00:00 and Sat 03 Jan 2026 00:00 UTC" in page
    assert "No alert episodes between" in page
    assert "<svg" not in page
    # night: the warehouse is off, the others are not
    night = build_report(path, start="2026-11-23T01:00Z", end="2026-11-23T03:00Z")
    assert summary(night)["warehouse"]["time covered"] == "no windows"
    # a database the monitor created but has not written to yet, and an open-ended period
    fresh = path.parent / "fresh.sqlite"
    md, _, _ = schema()
    engine = sa.create_engine(f"sqlite:///{fresh}")
    md.create_all(engine)
    engine.dispose()
    page = build_report(fresh)
    assert "No windows in the database." in page and "No alert episodes in the database." in page
    assert "No windows since Tue 24 Nov 2026 06:00 UTC." in build_report(fresh, start="2026-11-24T06:00")
    assert summary(page) == {}
    # a flapping camera: the latest 200 episodes listed, all of them counted
    _, _, alerts = schema()
    engine = sa.create_engine(f"sqlite:///{fresh}")
    with engine.begin() as conn:
        start = [DAY0 + timedelta(minutes=10 * i) for i in range(250)]
        conn.execute(alerts.insert(), [
            dict(camera="gate", rule="crowd", start_time=iso(t), end_time=iso(t + WINDOW),
                 peak_unmasked_share=0.5, people=8) for t in start
        ])  # fmt: skip
    engine.dispose()
    page = build_report(fresh)
    listed = tables(page).tables["alerts"][1:]
    assert len(listed) == 200 and listed[0][2] == fmt_time(start[-1])
    assert "… and 50 earlier episodes" in page and summary(page)["gate"]["alerts"] == "250"
    assert "No windows from warehouse between Mon 23 Nov 2026 01:00 and Mon 23 Nov 2026 03:00 UTC" in night


def test_self_contained(db: tuple[Path, list[dict], list[dict]]) -> None:
    page = build_report(db[0])
    parsed = tables(page)
    assert not [link for link in parsed.links if not link.startswith(("#", "data:"))]
    assert not re.search(r"""(?:src|href)\s*=\s*["']?\s*(?:https?:)?//""", page)
    assert not re.search(r"url\(\s*['\"]?(?:https?:)?//|@import|<script|<link", page)
    assert page.count("<svg") == 1 + len(CAMERAS)  # heat map + one timeline per camera


def test_cli_writes_atomically_and_refuses_to_destroy(
    db: tuple[Path, list[dict], list[dict]], tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    path = db[0]
    before = path.read_bytes()
    out = tmp_path / "report.html"
    assert main(["report", "--db", str(path), "--camera", "canteen", "--out", str(out)]) == 0
    assert "canteen" in summary(out.read_text())
    assert main(["report", "--db", f"sqlite:///{path}", "--out", str(out)]) == 0  # its own report: replaced
    assert set(summary(out.read_text())) == {"entrance", "canteen", "warehouse"}
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["report.html"]  # no temporary file left

    notes = tmp_path / "notes.html"
    notes.write_text("<p>mine</p>")
    cases = [
        (["--out", str(path)], "is the database"),
        (["--out", str(notes)], "not a maskwatch report"),
        (["--out", str(tmp_path)], "is a folder"),
        (["--from", "yesterday"], "not an ISO date"),
        (["--from", "2026-11-24", "--to", "2026-11-23T12:00"], "ends"),
        (["--camera", "lobby"], "unknown camera 'lobby' (known: canteen, entrance, warehouse)"),
    ]
    for extra, message in cases:
        args = [
            "report",
            "--db",
            str(path),
            *(["--out", str(tmp_path / "x.html")] if "--out" not in extra else []),
        ]
        assert main([*args, *extra]) == 1, extra
        err = capsys.readouterr().err
        assert err.startswith("maskwatch: error: ") and message in err and err.count("\n") == 1, err
    assert notes.read_text() == "<p>mine</p>"
    assert path.read_bytes() == before
    assert not (tmp_path / "x.html").exists()


def test_bad_databases(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    empty = tmp_path / "other.sqlite"
    with sqlite3.connect(empty) as conn:
        conn.execute("create table windows (camera text)")
    garbage = tmp_path / "garbage.sqlite"
    garbage.write_bytes(b"not a database at all" * 100)
    cases = [
        (tmp_path / "missing.sqlite", "database file not found"),
        (f"sqlite:///{tmp_path / 'missing.sqlite'}", "database file not found"),
        (empty, "lacks column"),
        (garbage, "cannot read the database"),
        ("nosuchdriver://x/y", "nosuchdriver"),
    ]
    for db, message in cases:
        assert main(["report", "--db", str(db), "--out", str(tmp_path / "r.html")]) == 1
        err = capsys.readouterr().err
        assert err.startswith("maskwatch: error: ") and message in err and err.count("\n") == 1, err
    assert not (tmp_path / "missing.sqlite").exists()  # never created by trying to read it
    with sqlite3.connect(empty) as conn:
        conn.execute("drop table windows")
    assert main(["report", "--db", str(empty), "--out", str(tmp_path / "r.html")]) == 1
    assert "no 'windows' table" in capsys.readouterr().err
    assert not (tmp_path / "r.html").exists()


@pytest.mark.slow
def test_installed_command_stays_light(db: tuple[Path, list[dict], list[dict]], tmp_path: Path) -> None:
    """`python -m maskwatch report` works end to end and never pays for torch or OpenCV."""
    out = tmp_path / "r.html"
    code = (
        "import sys; from maskwatch.cli import main; "
        f"rc = main(['report', '--db', {str(db[0])!r}, '--out', {str(out)!r}, '--to', '2026-11-23']); "
        "print(rc, sorted(m for m in ('torch', 'cv2') if m in sys.modules))"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().splitlines()[-1] == "0 []"
    assert set(summary(out.read_text())) == {"entrance", "canteen", "warehouse"}
    proc = subprocess.run(
        [sys.executable, "-m", "maskwatch", "report", "--db", str(db[0]), "--out", str(out), "--camera", "x"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 1 and proc.stderr.startswith("maskwatch: error: unknown camera 'x'")


@pytest.mark.slow
def test_renders_in_chromium(db: tuple[Path, list[dict], list[dict]], tmp_path: Path) -> None:
    out = tmp_path / "report.html"
    build_report(db[0], out)
    pixels = screenshot(out, tmp_path / "shot.png", "1280,2400")
    assert pixels.shape[:2] == (2400, 1280)
    assert pixels.std() > 20  # not a blank page
    red = (pixels[..., 0] > 180) & (pixels[..., 1] < 90) & (pixels[..., 2] < 90)
    green = (pixels[..., 1] > 130) & (pixels[..., 0] < 90) & (pixels[..., 2] < 110)
    assert red.sum() > 2000 and green.sum() > 2000  # the no-mask and with-mask colours were drawn
