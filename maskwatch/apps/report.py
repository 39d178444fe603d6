"""``maskwatch report``: the monitor's database → one HTML page a site manager reads in ten seconds.

The page is one self-contained file (inline CSS, charts as inline SVG drawn by matplotlib, no script, no
link to anything outside it), so it can be mailed, archived or opened on a machine without network. It
reads the two tables ``maskwatch monitor`` writes (``windows`` and ``alerts``) through SQLAlchemy Core, so
the embedded SQLite file and a PostgreSQL server work the same; a SQLite file is opened read-only, so a
report never changes (or creates) the database it reads.

Numbers, defined once here:
- *people counted*: the sum over windows of the people present in each window (a person seen in three
  windows counts three times: the windows table cannot tell it is the same person);
- *unmasked share*: people unmasked / people counted over the same windows (people-weighted, so a busy
  hour weighs more than an empty one), ``None`` when nobody was seen;
- *busiest hour*: the hour of day (UTC) with the most people per window on average;
- an *alert* is one episode (the monitor debounces consecutive windows over a rule into one row); it
  belongs to the period when it overlaps it, and is *ongoing* while its ``end_time`` is empty.
"""

from __future__ import annotations

import functools
import html
import io
import math
import os
import re
import sqlite3
import urllib.parse
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta, timezone
from pathlib import Path
from typing import Any

import numpy as np
import sqlalchemy as sa
from tqdm import tqdm

from maskwatch.apps import store
from maskwatch.errors import MaskwatchError
from maskwatch.io import atomic_write

GENERATOR = "maskwatch report"  # in a <meta> of every page: the mark that lets a re-run replace its own file
WINDOW_COLUMNS = ("camera", "start_time", "end_time", "people", "people_no_mask")  # the ones it reads
ALERT_COLUMNS = ("camera", "rule", "start_time", "end_time", "peak_unmasked_share", "people")
# The green / red that `maskwatch detect` draws mask / no-mask boxes in (video/annotate.py), slightly darkened
# so lines and text stay readable on white: one colour per class everywhere a viewer meets them.
WITH_MASK_COLOUR = "#2e9e44"
NO_MASK_COLOUR = "#d62f2f"
MAX_ALERT_ROWS = 200  # the latest episodes listed; a month of a flapping camera must not bury the page
MAX_BINS = 240  # time-series points per camera: enough to see a day at 5-min steps, light for a year
BIN_STEPS_S = (60, 300, 900, 1800, 3600, 3 * 3600, 6 * 3600, 12 * 3600, 86400, 7 * 86400)
UTC = timezone.utc


# --------------------------------------------------------------------------------------------- times


def parse_time(text: str | datetime | date, *, end: bool = False) -> datetime:
    """An ISO date or date-time as an aware UTC datetime (a naive one is UTC, like every time the monitor
    writes). A bare date given as the end of a period means the end of that day, so ``--from 2026-11-23
    --to 2026-11-23`` is that whole day."""
    if isinstance(text, datetime):
        return text.replace(tzinfo=UTC) if text.tzinfo is None else text.astimezone(UTC)
    if isinstance(text, date):
        day = datetime.combine(text, time(), UTC)
        return day + timedelta(days=1) if end else day
    s = str(text).strip()
    try:
        if re.fullmatch(r"\d{4}-\d{2}-\d{2}", s):
            return parse_time(date.fromisoformat(s), end=end)
        return parse_time(datetime.fromisoformat(s[:-1] + "+00:00" if s.endswith(("Z", "z")) else s))
    except ValueError:
        raise MaskwatchError(
            f"{text!r} is not an ISO date or time (e.g. 2026-11-23 or 2026-11-23T08:00:00Z)"
        ) from None


def _db_time(value: Any) -> datetime:
    """A time as stored: ISO-8601 text (the schema), or a datetime where a server type was used."""
    return datetime.fromtimestamp(_db_seconds(value), UTC)


def _db_seconds(value: Any) -> float:
    """A stored time as UTC epoch seconds; text goes through a cache, since one window's end is the next
    one's start and every camera shares the same boundaries (a month of windows parses ~10× faster)."""
    return _text_seconds(value) if isinstance(value, str) else parse_time(value).timestamp()


@functools.lru_cache(maxsize=1 << 16)
def _text_seconds(text: str) -> float:
    return store.parse_time(text)  # the monitor's own reading of the schema's text times


def iso(t: datetime) -> str:
    """The schema's text form of a time (``2026-11-23T10:00:00Z``), as the monitor writes it."""
    return store.iso(t.timestamp())


def fmt_time(t: datetime) -> str:
    """A time the way a person reads it (``Mon 23 Nov 2026 14:05``); pages say once that times are UTC."""
    return t.astimezone(UTC).strftime("%a %d %b %Y %H:%M")


def fmt_duration(seconds: float) -> str:
    minutes = round(seconds / 60)
    if minutes < 60:
        return f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        return f"{hours} h {minutes:02d} min" if minutes else f"{hours} h"
    days, hours = divmod(hours, 24)
    return f"{days} d {hours} h" if hours else f"{days} d"


def fmt_share(share: float | None) -> str:
    return "–" if share is None else f"{100 * share:.1f}%"


# -------------------------------------------------------------------------------------------- database


def open_database(db: str | Path) -> tuple[sa.Engine, Path | None]:
    """An engine on ``db`` (a SQLite file path or any SQLAlchemy URL) and the SQLite file behind it, if any.

    A SQLite file is opened read-only (``mode=ro``): a missing file is an error instead of a new empty
    database, and nothing the report does can write to it.
    """
    text = str(db)
    path = Path(text)
    if "://" in text:
        try:
            url = sa.make_url(text)
        except sa.exc.ArgumentError:
            raise MaskwatchError(f"{text}: not a database URL or file") from None
        if url.get_backend_name() != "sqlite":
            try:
                return sa.create_engine(url), None
            except (ImportError, sa.exc.NoSuchModuleError) as e:
                raise MaskwatchError(f"{url.render_as_string(hide_password=True)}: {e}") from None
        if not url.database or url.database == ":memory:":
            raise MaskwatchError(f"{text}: an in-memory database holds no monitor data")
        path = Path(url.database)
    if not path.is_file():
        raise MaskwatchError(f"{path}: database file not found")
    uri = f"file:{urllib.parse.quote(str(path.resolve()))}?mode=ro"
    # the URL names the file for messages; the creator is what connects (read-only)
    url = sa.URL.create("sqlite", database=str(path))
    engine = sa.create_engine(url, creator=lambda: sqlite3.connect(uri, uri=True))
    return engine, path


def report_tables(engine: sa.Engine) -> tuple[sa.Table, sa.Table]:
    """The monitor's ``windows`` and ``alerts`` tables, read-only.

    Reflected from the database so the report reads what is there; this is the one place that knows where
    the tables come from (it can as well return the table objects of the monitor's schema module).
    """
    metadata = sa.MetaData()
    try:
        metadata.reflect(engine, only=lambda name, _: name in ("windows", "alerts"))
    except sa.exc.SQLAlchemyError as e:
        raise MaskwatchError(f"{_name(engine)}: cannot read the database ({_first_line(e)})") from None
    for name, columns in (("windows", WINDOW_COLUMNS), ("alerts", ALERT_COLUMNS)):
        if name not in metadata.tables:
            raise MaskwatchError(
                f"{_name(engine)}: no '{name}' table (not a database written by `maskwatch monitor`?)"
            )
        missing = [c for c in columns if c not in metadata.tables[name].c]
        if missing:
            raise MaskwatchError(f"{_name(engine)}: table '{name}' lacks column(s) {', '.join(missing)}")
    return metadata.tables["windows"], metadata.tables["alerts"]


def _name(engine: sa.Engine) -> str:
    """The database as messages name it: a SQLite file's path, a server's URL without its password."""
    if engine.url.get_backend_name() == "sqlite":
        return str(engine.url.database)
    return engine.url.render_as_string(hide_password=True)


def _first_line(e: BaseException) -> str:
    return str(getattr(e, "orig", None) or e).strip().splitlines()[0]


def _bound(column: sa.Column, t: datetime, margin_s: int) -> Any:
    """A value to compare ``column`` with. Text times compare as strings, which is exact for the schema's
    one format; the one-second margin keeps rows written with fractions of a second or an offset instead
    of ``Z``, and the exact comparison is then made on parsed times."""
    t = t + timedelta(seconds=margin_s)
    return iso(t) if isinstance(column.type, sa.String) else t


# ---------------------------------------------------------------------------------------------- data


@dataclass
class CameraData:
    """One camera's windows in the period (times as UTC epoch seconds) and what the page says of them."""

    camera: str
    start: np.ndarray = field(default_factory=lambda: np.zeros(0))
    end: np.ndarray = field(default_factory=lambda: np.zeros(0))
    people: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    people_no_mask: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    alerts: list[Alert] = field(default_factory=list)

    @property
    def windows(self) -> int:
        return len(self.start)

    @property
    def people_counted(self) -> int:
        return int(self.people.sum())

    @property
    def unmasked(self) -> int:
        return int(self.people_no_mask.sum())

    @property
    def share(self) -> float | None:
        return self.unmasked / self.people_counted if self.people_counted else None

    @property
    def peak_people(self) -> int:
        return int(self.people.max()) if self.windows else 0

    @property
    def covered_s(self) -> float:
        return float((self.end - self.start).sum())

    def hourly(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Per hour of day (UTC): windows, people counted, people unmasked (arrays of 24)."""
        hour = ((self.start // 3600) % 24).astype(np.int64)
        windows = np.bincount(hour, minlength=24)
        people = np.bincount(hour, weights=self.people, minlength=24)
        unmasked = np.bincount(hour, weights=self.people_no_mask, minlength=24)
        return windows, people, unmasked

    @property
    def busiest_hour(self) -> int | None:
        windows, people, _ = self.hourly()
        if not people.sum():
            return None
        mean = np.divide(people, windows, out=np.zeros(24), where=windows > 0)
        return int(np.argmax(mean))


@dataclass(frozen=True)
class Alert:
    camera: str
    rule: str
    start: datetime
    end: datetime | None  # None while the episode is ongoing
    peak_unmasked_share: float
    people: int


@dataclass
class ReportData:
    """What the page shows: the period (as asked, or the data's extent), per camera, worst first."""

    start: datetime | None
    end: datetime | None
    cameras: list[CameraData]
    source: str

    @property
    def alerts(self) -> list[Alert]:
        return sorted((a for c in self.cameras for a in c.alerts), key=lambda a: (a.start, a.camera))

    @property
    def windows(self) -> int:
        return sum(c.windows for c in self.cameras)

    @property
    def share(self) -> float | None:
        people = sum(c.people_counted for c in self.cameras)
        return sum(c.unmasked for c in self.cameras) / people if people else None

    @property
    def worst(self) -> CameraData | None:
        """The camera with the highest unmasked share (more alerts break a tie); None if nobody was seen."""
        seen = [c for c in self.cameras if c.share is not None]
        return max(seen, key=lambda c: (c.share, len(c.alerts))) if seen else None


def known_cameras(engine: sa.Engine, windows: sa.Table, alerts: sa.Table) -> list[str]:
    query = sa.union(sa.select(windows.c.camera).distinct(), sa.select(alerts.c.camera).distinct())
    with engine.connect() as conn:
        return sorted({str(r[0]) for r in conn.execute(query)})


def load_report_data(
    engine: sa.Engine,
    cameras: Sequence[str] | None = None,
    start: datetime | None = None,
    end: datetime | None = None,
) -> ReportData:
    """Read the windows starting in ``[start, end)`` and the alert episodes overlapping it.

    Raises :class:`MaskwatchError` for a database without the monitor's tables or an unknown camera, before
    reading any rows.
    """
    windows, alerts = report_tables(engine)
    try:
        known = known_cameras(engine, windows, alerts)
        if cameras:
            unknown = [c for c in cameras if c not in known]
            if unknown:
                listed = ", ".join(known) if known else "none: the database is empty"
                raise MaskwatchError(f"unknown camera {', '.join(map(repr, unknown))} (known: {listed})")
        names = list(dict.fromkeys(cameras)) if cameras else known
        data = {name: CameraData(name) for name in names}
        with engine.connect() as conn:
            _read_windows(conn, windows, data, (start, end))
            _read_alerts(conn, alerts, data, (start, end))
    except sa.exc.SQLAlchemyError as e:
        raise MaskwatchError(f"{_name(engine)}: cannot read the database ({_first_line(e)})") from None
    ordered = sorted(
        data.values(), key=lambda c: (c.share is None, -(c.share or 0), -len(c.alerts), c.camera)
    )
    return ReportData(start, end, ordered, _name(engine))


Period = tuple[datetime | None, datetime | None]


def _read_windows(conn: sa.Connection, table: sa.Table, data: dict[str, CameraData], period: Period) -> None:
    c, (start, end) = table.c, period
    query = sa.select(*(c[name] for name in WINDOW_COLUMNS)).where(c.camera.in_(list(data)))
    if start is not None:
        query = query.where(c.start_time >= _bound(c.start_time, start, -1))
    if end is not None:
        query = query.where(c.start_time < _bound(c.start_time, end, 1))
    lo = start.timestamp() if start else -math.inf
    hi = end.timestamp() if end else math.inf
    rows: dict[str, list[tuple[float, float, int, int]]] = {name: [] for name in data}
    result = conn.execute(query.order_by(c.camera, c.start_time))
    # a year of minute windows takes a while to read: a counter shows on a terminal after 2 s
    for cam, t0, t1, people, unmasked in tqdm(
        result, desc="windows", unit="window", disable=None, leave=False, delay=2
    ):
        s = _db_seconds(t0)
        if lo <= s < hi:
            e = _db_seconds(t1) if t1 is not None else s
            rows[cam].append((s, e, int(people or 0), int(unmasked or 0)))
    for name, values in rows.items():
        if values:
            arr = np.array(sorted(values), dtype=np.float64)
            cam = data[name]
            cam.start, cam.end = arr[:, 0], arr[:, 1]
            cam.people, cam.people_no_mask = arr[:, 2].astype(np.int64), arr[:, 3].astype(np.int64)


def _read_alerts(conn: sa.Connection, table: sa.Table, data: dict[str, CameraData], period: Period) -> None:
    c, (start, end) = table.c, period
    query = sa.select(*(c[name] for name in ALERT_COLUMNS)).where(c.camera.in_(list(data)))
    if end is not None:
        query = query.where(c.start_time < _bound(c.start_time, end, 1))
    if start is not None:
        query = query.where(sa.or_(c.end_time.is_(None), c.end_time > _bound(c.end_time, start, -1)))
    for cam, rule, t0, t1, peak, people in conn.execute(query.order_by(c.start_time)):
        stop = None if t1 is None else _db_time(t1)
        alert = Alert(str(cam), str(rule), _db_time(t0), stop, float(peak or 0), int(people or 0))
        if (end is None or alert.start < end) and (start is None or stop is None or stop > start):
            data[alert.camera].alerts.append(alert)


# -------------------------------------------------------------------------------------------- charts


def _svg(fig: Any) -> str:
    """A figure as inline SVG: text stays text (small, sharp, searchable), ids are stable between runs."""
    import matplotlib

    buf = io.StringIO()
    with matplotlib.rc_context({"svg.fonttype": "none", "svg.hashsalt": "maskwatch"}):
        fig.savefig(buf, format="svg", metadata={"Date": None, "Creator": None})
    text = buf.getvalue()
    return text[text.index("<svg") :]


def _figure(size: tuple[float, float]) -> Any:
    from matplotlib.figure import Figure  # imported here: matplotlib costs ~0.5 s

    fig = Figure(figsize=size, layout="constrained")
    return fig


def _style(ax: Any) -> None:
    ax.spines[["top", "right"]].set_visible(False)
    ax.grid(axis="y", color="#e5e5e5", linewidth=0.8)
    ax.set_axisbelow(True)
    ax.tick_params(labelsize=9, colors="#444")


def bin_seconds(span_s: float, window_s: float) -> int:
    """The time step of the charts: the smallest of a few round steps that is at least one window long and
    puts at most MAX_BINS points on the period."""
    for step in BIN_STEPS_S:
        if step >= window_s and span_s / step <= MAX_BINS:
            return step
    return BIN_STEPS_S[-1]


def plot_camera(cam: CameraData, t0: float, t1: float, step: int) -> str:
    """Unmasked share (with alert episodes shaded) above people per window (masked / unmasked stacked),
    on the period's full time axis so every camera's chart lines up with the others."""
    import matplotlib.dates as mdates

    edges = np.arange(math.floor(t0 / step) * step, t1 + step, step, dtype=np.float64)
    idx = np.clip(np.searchsorted(edges, cam.start, side="right") - 1, 0, len(edges) - 2)
    n = np.bincount(idx, minlength=len(edges) - 1)
    people = np.bincount(idx, weights=cam.people, minlength=len(edges) - 1)
    unmasked = np.bincount(idx, weights=cam.people_no_mask, minlength=len(edges) - 1)
    with np.errstate(invalid="ignore", divide="ignore"):
        share = np.where(people > 0, unmasked / people, np.where(n > 0, 0.0, np.nan)) * 100
        mean_unmasked = np.where(n > 0, unmasked / n, 0)
        mean_masked = np.where(n > 0, (people - unmasked) / n, 0)
    xe = mdates.date2num(edges.astype("datetime64[s]"))  # bin edges as matplotlib dates
    width = step / 86400

    fig = _figure((11, 3.3))
    top, bottom = fig.subplots(2, 1, sharex=True, height_ratios=(1.2, 1))
    for ax in (top, bottom):
        _style(ax)
    for a in cam.alerts:
        end = (a.end or datetime.fromtimestamp(t1, UTC)).timestamp()
        lo, hi = mdates.date2num(
            np.array([max(a.start.timestamp(), t0), min(end, t1)]).astype("datetime64[s]")
        )
        hatch = "///" if a.end is None else None
        top.axvspan(lo, max(hi, lo + width / 2), color=NO_MASK_COLOUR, alpha=0.13, lw=0, hatch=hatch)
    # one path per series (not one rectangle per bin): fast to draw, light in the page
    top.stairs(share, xe, color=NO_MASK_COLOUR, linewidth=1.6)
    top.fill_between(xe, np.append(share, share[-1:]), step="post", color=NO_MASK_COLOUR, alpha=0.18, lw=0)
    top.set_ylim(0, 100)
    top.set_yticks([0, 25, 50, 75, 100])
    top.yaxis.set_major_formatter("{x:.0f}%")
    top.set_ylabel("unmasked", fontsize=9)
    total = mean_masked + mean_unmasked
    bottom.stairs(mean_masked, xe, fill=True, color=WITH_MASK_COLOUR, lw=0)
    bottom.stairs(total, xe, baseline=mean_masked, fill=True, color=NO_MASK_COLOUR, lw=0)
    bottom.set_ylabel("people", fontsize=9)
    ymax = float(total.max()) if len(total) else 0.0
    bottom.set_ylim(0, max(1.0, ymax * 1.1))
    bottom.yaxis.get_major_locator().set_params(integer=True)
    locator = mdates.AutoDateLocator(minticks=4, maxticks=10)
    bottom.xaxis.set_major_locator(locator)
    bottom.xaxis.set_major_formatter(
        mdates.ConciseDateFormatter(
            locator,
            formats=["%Y", "%b", "%a %d %b", "%H:%M", "%H:%M", "%S.%f"],
            zero_formats=["", "%Y", "%b", "%a %d %b", "%H:%M", "%H:%M"],
            offset_formats=["", "%Y", "%b %Y", "%d %b %Y", "%d %b %Y", "%d %b %Y %H:%M"],
        )
    )
    bottom.set_xlim(mdates.date2num(np.array([t0, t1]).astype("datetime64[s]")))
    bottom.set_xlabel("time (UTC)", fontsize=9)
    return _svg(fig)


def plot_heatmap(cameras: Sequence[CameraData]) -> str:
    """Hour of day × camera, coloured by unmasked share (white → the no-mask red), the share written in
    each cell; hours nobody was seen are left grey so 'no data' never reads as 'all masked'."""
    from matplotlib.colors import LinearSegmentedColormap

    shares = np.full((len(cameras), 24), np.nan)
    for i, cam in enumerate(cameras):
        _, people, unmasked = cam.hourly()
        shares[i] = np.divide(unmasked, people, out=np.full(24, np.nan), where=people > 0)
    cmap = LinearSegmentedColormap.from_list("unmasked", ["#ffffff", NO_MASK_COLOUR]).with_extremes(
        bad="#eeeeee"
    )
    fig = _figure((11, 0.9 + 0.42 * len(cameras)))
    ax = fig.subplots()
    image = ax.imshow(np.ma.masked_invalid(shares), cmap=cmap, vmin=0, vmax=1, aspect="auto")
    for (i, h), v in np.ndenumerate(shares):
        if np.isfinite(v):
            ax.text(
                h,
                i,
                f"{100 * v:.0f}",
                ha="center",
                va="center",
                fontsize=8,
                color="white" if v > 0.55 else "#333",
            )
    ax.set_xticks(range(24), [f"{h:02d}" for h in range(24)])
    ax.set_yticks(range(len(cameras)), [c.camera for c in cameras])
    ax.set_xlabel("hour of day (UTC) — numbers: % of people unmasked; grey: nobody seen", fontsize=9)
    ax.tick_params(labelsize=9, length=0)
    for spine in ax.spines.values():
        spine.set_visible(False)
    bar = fig.colorbar(image, ax=ax, fraction=0.025, pad=0.01, format=lambda v, _: f"{100 * v:.0f}%")
    bar.ax.tick_params(labelsize=8)
    bar.outline.set_visible(False)
    return _svg(fig)


# ---------------------------------------------------------------------------------------------- page

CSS = """
body{font:15px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,"DejaVu Sans",sans-serif;
  color:#222;margin:0;background:#f6f6f4}
main{max-width:1120px;margin:0 auto;padding:24px 28px 48px}
h1{font-size:22px;margin:0 0 2px}h2{font-size:18px;margin:34px 0 8px}h3{font-size:16px;margin:22px 0 4px}
.period{color:#555;margin:0 0 18px}
.cards{display:flex;gap:14px;flex-wrap:wrap}
.card{flex:1 1 220px;background:#fff;border-radius:10px;padding:14px 18px;box-shadow:0 1px 3px #0002;
  border-top:5px solid #999}
.card.bad{border-top-color:var(--no)}.card.good{border-top-color:var(--ok)}
.card .label{font-size:13px;text-transform:uppercase;letter-spacing:.04em;color:#666}
.card .value{font-size:34px;font-weight:700;line-height:1.2}.card .note{font-size:13px;color:#555}
table{border-collapse:collapse;background:#fff;width:100%;box-shadow:0 1px 3px #0002;border-radius:8px;
  overflow:hidden}
th,td{padding:7px 12px;text-align:right;border-bottom:1px solid #eee;white-space:nowrap}
th{background:#fafafa;font-size:13px;color:#555;font-weight:600}
th:first-child,td:first-child,.text{text-align:left}
tr.worst td{background:#fdf0f0}tr.worst td:first-child{border-left:4px solid var(--no)}
.bar{display:inline-block;vertical-align:middle;width:80px;height:9px;background:#e9f5ec;margin-left:8px;border-radius:5px;overflow:hidden}
.bar i{display:block;height:100%;background:var(--no)}
.ongoing{color:var(--no);font-weight:700}
.chart{background:#fff;border-radius:8px;box-shadow:0 1px 3px #0002;padding:6px}
.chart svg{width:100%;height:auto;display:block}
.legend{font-size:13px;color:#555;margin:4px 0 10px}
.sw{display:inline-block;width:12px;height:12px;border-radius:2px;vertical-align:-1px;margin:0 4px 0 12px}
.empty{background:#fff;border-radius:8px;padding:16px;color:#666;font-style:italic;box-shadow:0 1px 3px #0002;
  margin-bottom:14px}
.meta{color:#888;font-size:12px;margin-top:40px}
"""


def _e(value: object) -> str:
    return html.escape(str(value))


def _count(n: int, noun: str) -> str:
    return f"{n:,} {noun}{'s' * (n != 1)}"


def _hour(h: int | None) -> str:
    return "–" if h is None else f"{h:02d}:00–{(h + 1) % 24:02d}:00"


def _lasted(alert: Alert, data: ReportData) -> str:
    """How long an episode lasted; an ongoing one, at least until its camera's last window in the period."""
    if alert.end is not None:
        return fmt_duration((alert.end - alert.start).total_seconds())
    cam = next(c for c in data.cameras if c.camera == alert.camera)
    last = float(cam.end.max()) if cam.windows else -math.inf
    return f"≥ {fmt_duration(last - alert.start.timestamp())}" if last > alert.start.timestamp() else "–"


def _period_text(start: datetime | None, end: datetime | None) -> str:
    """The period as the end of a sentence ("No windows ..."), whichever of its ends are known."""
    if start and end:
        return f"between {fmt_time(start)} and {fmt_time(end)} UTC"
    if start:
        return f"since {fmt_time(start)} UTC"
    if end:
        return f"before {fmt_time(end)} UTC"
    return "in the database"


def render_html(data: ReportData, generated: datetime | None = None) -> str:
    """The page: headline cards, summary table (worst camera first), hour-of-day heat map, one timeline
    per camera, then the alert episodes; every empty part says what is empty and over which period."""
    t_lo = [c.start.min() for c in data.cameras if c.windows]
    t_hi = [c.end.max() for c in data.cameras if c.windows]
    start = data.start or (datetime.fromtimestamp(min(t_lo), UTC) if t_lo else None)
    end = data.end or (datetime.fromtimestamp(max(t_hi), UTC) if t_hi else None)
    when = _period_text(start, end)
    alerts = data.alerts
    ongoing = sum(a.end is None for a in alerts)
    share, worst = data.share, data.worst
    parts: list[str] = []

    period = f"{fmt_time(start)} → {fmt_time(end)} UTC" if start and end else f"no windows {when}"
    names = ", ".join(c.camera for c in sorted(data.cameras, key=lambda c: c.camera)) or "none"
    parts.append(
        f"<h1>Mask compliance report</h1><p class=period>{_e(period)} · cameras: {_e(names)} · "
        f"{data.windows:,} windows</p>"
    )

    # --- headline
    if not data.windows:
        parts.append(f"<div class=empty>No windows {_e(when)}.</div>")
    cards = []
    if data.windows:
        tone = "bad" if share else "good"
        people = sum(c.people_counted for c in data.cameras)
        cards.append(
            (
                tone,
                "people unmasked",
                fmt_share(share),
                f"{sum(c.unmasked for c in data.cameras):,} of {people:,} people counted",
            )
        )
    cards.append(
        (
            "bad" if alerts else "good",
            "alerts",
            f"{len(alerts)}",
            (f"<span class=ongoing>{ongoing} ongoing</span>" if ongoing else "none ongoing")
            + f" · over {_count(len(data.cameras), 'camera')}",
        )
    )
    if worst is not None:
        cards.append(
            (
                "bad" if worst.share else "good",
                "worst camera",
                _e(worst.camera),
                f"{fmt_share(worst.share)} unmasked · {_count(len(worst.alerts), 'alert')} · "
                f"busiest {_hour(worst.busiest_hour)} UTC",
            )
        )
    parts.append(
        "<div class=cards>"
        + "".join(
            f"<div class='card {tone}'><div class=label>{label}</div><div class=value>{value}</div>"
            f"<div class=note>{note}</div></div>"
            for tone, label, value, note in cards
        )
        + "</div>"
    )

    # --- summary table
    parts.append("<h2>Cameras, worst first</h2>")
    rows = []
    for cam in data.cameras:
        worst_row = cam is worst and bool(cam.share)
        if cam.windows:
            pct = 100 * (cam.share or 0)
            cells = [
                fmt_duration(cam.covered_s),
                f"{cam.people_counted:,}",
                f"{cam.peak_people:,}",
                f"{fmt_share(cam.share)}<span class=bar><i style='width:{pct:.1f}%'></i></span>",
            ]
        else:
            cells = ["<span class=ongoing>no windows</span>", "–", "–", "–"]
        n_open = sum(a.end is None for a in cam.alerts)
        alerts_cell = f"{len(cam.alerts)}" + (
            f" <span class=ongoing>({n_open} ongoing)</span>" if n_open else ""
        )
        cells += [alerts_cell, _hour(cam.busiest_hour)]
        rows.append(
            f"<tr{' class=worst' if worst_row else ''}><td>{_e(cam.camera)}</td>"
            + "".join(f"<td>{c}</td>" for c in cells)
            + "</tr>"
        )
    parts.append(
        "<table id=summary><thead><tr><th>camera</th><th>time covered</th><th>people counted*</th>"
        "<th>peak in a window</th><th>unmasked share</th><th>alerts</th><th>busiest hour (UTC)</th>"
        "</tr></thead>"
        f"<tbody>{''.join(rows)}</tbody></table>"
        "<p class=legend>* people present in each window, summed over windows (someone seen in three windows "
        "counts three times); unmasked share = people unmasked / people counted.</p>"
    )

    if data.windows:
        seen = [c for c in data.cameras if c.windows]
        parts.append("<h2>When: unmasked share by hour of day</h2>")
        parts.append(f"<div class=chart>{plot_heatmap(seen)}</div>")
        parts.append(
            "<h2>Over time</h2><p class=legend>"
            f"<span class=sw style='background:{WITH_MASK_COLOUR}'></span>with mask"
            f"<span class=sw style='background:{NO_MASK_COLOUR}'></span>no mask"
            f"<span class=sw style='background:{NO_MASK_COLOUR}33;border:1px solid {NO_MASK_COLOUR}'></span>"
            "alert episode (hatched: ongoing) · people = average per window</p>"
        )
        assert start and end
        t0, t1 = start.timestamp(), end.timestamp()
        lengths = np.concatenate([c.end - c.start for c in seen])
        step = bin_seconds(t1 - t0, float(np.median(lengths)) if len(lengths) else 60)
        for cam in data.cameras:
            parts.append(
                f"<h3>{_e(cam.camera)} <small style='color:#666;font-weight:400'>· "
                f"{fmt_share(cam.share)} unmasked · {_count(len(cam.alerts), 'alert')}</small></h3>"
            )
            if cam.windows:
                parts.append(f"<div class=chart>{plot_camera(cam, t0, t1, step)}</div>")
            else:
                parts.append(f"<div class=empty>No windows from {_e(cam.camera)} {_e(when)}.</div>")

    # --- alerts
    parts.append("<h2>Alert episodes, ongoing then latest first</h2>")
    if alerts:
        rows = []
        latest = sorted(alerts, key=lambda a: (a.end is None, a.start), reverse=True)
        for a in latest[:MAX_ALERT_ROWS]:
            stop = "<span class=ongoing>ongoing</span>" if a.end is None else _e(fmt_time(a.end))
            length = _lasted(a, data)
            rows.append(
                f"<tr><td>{_e(a.camera)}</td><td class=text>{_e(a.rule)}</td><td>{_e(fmt_time(a.start))}</td>"
                f"<td>{stop}</td><td>{length}</td>"
                f"<td>{fmt_share(a.peak_unmasked_share)}</td><td>{a.people}</td></tr>"
            )
        parts.append(
            "<table id=alerts><thead><tr><th>camera</th><th class=text>rule</th><th>start (UTC)</th>"
            "<th>end (UTC)</th><th>lasted</th><th>peak unmasked</th><th>people</th></tr></thead>"
            f"<tbody>{''.join(rows)}</tbody></table>"
        )
        if len(latest) > MAX_ALERT_ROWS:
            parts.append(
                f"<p class=legend>… and {len(latest) - MAX_ALERT_ROWS:,} earlier episodes, not listed "
                "(counted above; narrow the period with --from/--to to list them).</p>"
            )
    else:
        parts.append(f"<div class=empty>No alert episodes {_e(when)}.</div>")

    made = generated or datetime.now(UTC)
    parts.append(
        f"<p class=meta>Generated by maskwatch report on {_e(fmt_time(made))} UTC from "
        f"{_e(data.source)}. All times UTC.</p>"
    )
    return (
        "<!DOCTYPE html><html lang=en><head><meta charset=utf-8>"
        f"<meta name=generator content='{GENERATOR}'>"
        "<meta name=viewport content='width=device-width,initial-scale=1'>"
        f"<title>Mask compliance {_e(period)}</title>"
        f"<style>:root{{--ok:{WITH_MASK_COLOUR};--no:{NO_MASK_COLOUR}}}"
        f"{CSS}</style></head><body><main>{''.join(parts)}</main></body></html>\n"
    )


# ------------------------------------------------------------------------------------------- entry


def check_output(out: Path, db_file: Path | None) -> None:
    """Refuse, before any work, an output that would destroy something: the database itself, a folder, or
    an existing file that is not a report this command wrote."""
    if out.is_dir():
        raise MaskwatchError(f"{out}: is a folder; give the report's file name (e.g. report.html)")
    if db_file is not None and out.exists() and os.path.samefile(out, db_file):
        raise MaskwatchError(f"{out}: is the database; choose another --out")
    if out.exists():
        with open(out, "rb") as f:
            head = f.read(4096)
        if f"name=generator content='{GENERATOR}'".encode() not in head:
            raise MaskwatchError(
                f"{out}: exists and is not a maskwatch report; remove it or choose another --out"
            )
    parent = next((p for p in (out.parent, *out.parent.parents) if p.exists()), Path("."))
    if not os.access(parent, os.W_OK):
        raise MaskwatchError(f"{out}: cannot write in {parent}")


def build_report(
    db: str | Path,
    out: str | Path | None = None,
    cameras: Iterable[str] | None = None,
    start: str | datetime | date | None = None,
    end: str | datetime | date | None = None,
) -> str:
    """The report on ``db`` (SQLite file or SQLAlchemy URL) as an HTML string, also written to ``out``.

    ``cameras`` restricts it to those cameras; ``start``/``end`` (ISO dates or times, UTC unless they say
    otherwise; a bare end date includes that day) to the windows starting in ``[start, end)``. Every input
    is checked before the database is read.
    """
    t0 = None if start is None else parse_time(start)
    t1 = None if end is None else parse_time(end, end=True)
    if t0 is not None and t1 is not None and t1 <= t0:
        raise MaskwatchError(f"the period ends ({iso(t1)}) before it starts ({iso(t0)})")
    engine, db_file = open_database(db)
    try:
        if out is not None:
            check_output(Path(out), db_file)
        data = load_report_data(engine, list(cameras) if cameras else None, t0, t1)
    finally:
        engine.dispose()
    page = render_html(data)
    if out is not None:
        with atomic_write(out) as f:
            f.write(page)
    return page
