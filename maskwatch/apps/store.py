"""The monitor's database: windows, alerts and (optionally) detections, through SQLAlchemy Core.

One schema for SQLite (the embedded default: one file, WAL mode so ``maskwatch report`` can read while a
monitor writes) and PostgreSQL (``postgresql+psycopg://…``, for several machines writing to one place).
The report reads these tables, so their names and columns are a contract: columns may be added, never
renamed.

- ``windows``: one row per camera per closed time window, keyed by ``(camera, start_time)``. Times are
  ISO 8601 UTC strings ("2026-11-23T10:00:00Z"), which sort as text and read the same in every database.
- ``alerts``: one row per alert episode; ``end_time`` is NULL while it is open.
- ``detections``: per-frame faces, with ``--keep-detections``.
- ``schema_version``: one row, the version the tables are at; :func:`open_store` creates a new database at
  :data:`SCHEMA_VERSION` and upgrades an older one step by step, explicitly (no silent ``create_all`` on a
  database of another version).

Crash safety: a window, its detections and the rows its alerts change are written in one transaction, and
a window that is already there is left alone (``ON CONFLICT DO NOTHING``), so re-running a file or
restarting after a kill neither loses nor doubles a window.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, Engine

from maskwatch.errors import MaskwatchError

log = logging.getLogger(__name__)

SCHEMA_VERSION = 1

metadata = sa.MetaData()

windows = sa.Table(
    "windows",
    metadata,
    sa.Column("camera", sa.Text, primary_key=True),
    sa.Column("start_time", sa.Text, primary_key=True),
    sa.Column("end_time", sa.Text, nullable=False),
    sa.Column("frames", sa.Integer, nullable=False),
    sa.Column("faces", sa.Integer, nullable=False),
    sa.Column("with_mask", sa.Integer, nullable=False),
    sa.Column("no_mask", sa.Integer, nullable=False),
    sa.Column("people", sa.Integer, nullable=False),
    sa.Column("people_no_mask", sa.Integer, nullable=False),
    sa.Column("unmasked_share", sa.Float, nullable=False),
)

alerts = sa.Table(
    "alerts",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("camera", sa.Text, nullable=False),
    sa.Column("rule", sa.Text, nullable=False),
    sa.Column("start_time", sa.Text, nullable=False),
    sa.Column("end_time", sa.Text, nullable=True),
    sa.Column("peak_unmasked_share", sa.Float, nullable=False),
    sa.Column("people", sa.Integer, nullable=False),
    # One episode per camera, rule and start: a re-run finds its alert instead of raising it again.
    sa.UniqueConstraint("camera", "rule", "start_time", name="alerts_episode"),
)

detections = sa.Table(
    "detections",
    metadata,
    sa.Column("camera", sa.Text, nullable=False),
    sa.Column("time", sa.Text, nullable=False),
    sa.Column("frame", sa.Integer, nullable=False),
    sa.Column("x1", sa.Float, nullable=False),
    sa.Column("y1", sa.Float, nullable=False),
    sa.Column("x2", sa.Float, nullable=False),
    sa.Column("y2", sa.Float, nullable=False),
    sa.Column("label", sa.Text, nullable=False),
    sa.Column("score", sa.Float, nullable=False),
    sa.Column("track", sa.Integer, nullable=False),
    sa.Index("detections_camera_time", "camera", "time"),
)

schema_version = sa.Table("schema_version", metadata, sa.Column("version", sa.Integer, nullable=False))

# Upgrades from version N to N + 1, applied in order inside one transaction each.
UPGRADES: dict[int, Sequence[str]] = {}


def iso(t: float) -> str:
    """Unix seconds → the ISO 8601 UTC text the tables hold (milliseconds only when there are any)."""
    d = dt.datetime.fromtimestamp(t, dt.timezone.utc)
    text = d.strftime("%Y-%m-%dT%H:%M:%S")
    if d.microsecond:
        text += f".{d.microsecond // 1000:03d}"
    return text + "Z"


def parse_time(text: str) -> float:
    """ISO 8601 (``Z`` or an offset; a naive time is taken as UTC) → Unix seconds."""
    try:
        d = dt.datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise MaskwatchError(f"{text!r}: not an ISO 8601 time (e.g. 2026-11-23T10:00:00Z)") from None
    if d.tzinfo is None:
        d = d.replace(tzinfo=dt.timezone.utc)
    return d.timestamp()


@dataclass
class Window:
    """One closed window of one camera, as stored."""

    camera: str
    start_time: str
    end_time: str
    frames: int
    faces: int
    with_mask: int
    no_mask: int
    people: int
    people_no_mask: int
    unmasked_share: float


def database_url(url_or_file: str | Path) -> str:
    """A SQLAlchemy URL as given, or a file path made into a SQLite URL."""
    text = str(url_or_file)
    return text if "://" in text else f"sqlite:///{Path(text).expanduser().resolve()}"


class Store:
    """A connection pool to the monitor database, with the few writes the monitor needs.

    Every method opens its own transaction from the pool, so the store may be shared by threads (SQLite
    connections are bound to the thread that made them; the pool hands each thread its own)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.dialect = engine.dialect.name

    def _insert(self, table: sa.Table) -> Any:
        """INSERT … ON CONFLICT DO NOTHING in this database's dialect (with RETURNING to learn whether a
        row went in: ``rowcount`` is not reliable for it across drivers)."""
        if self.dialect == "postgresql":
            return postgresql.insert(table).on_conflict_do_nothing()
        if self.dialect == "sqlite":
            return sqlite.insert(table).on_conflict_do_nothing()
        raise MaskwatchError(f"unsupported database {self.dialect!r} (use SQLite or PostgreSQL)")

    def write_window(
        self, window: Window, rows: Sequence[dict[str, Any]] = (), conn: Connection | None = None
    ) -> bool:
        """Store a closed window and its detections in one transaction; False when it was already there
        (then nothing is written: a re-run does not double detections either)."""
        if conn is None:
            with self.engine.begin() as c:
                return self.write_window(window, rows, c)
        insert = self._insert(windows).values(**asdict(window)).returning(windows.c.camera)
        inserted = conn.execute(insert).first() is not None
        if inserted and rows:
            conn.execute(detections.insert(), [{"camera": window.camera, **r} for r in rows])
        return inserted

    def open_alert(
        self, camera: str, rule: str, start_time: str, share: float, people: int, conn: Connection
    ) -> bool:
        """Record an alert episode's start; False when a previous run already did (do not notify again)."""
        values = {
            "camera": camera,
            "rule": rule,
            "start_time": start_time,
            "end_time": None,
            "peak_unmasked_share": share,
            "people": people,
        }
        return conn.execute(self._insert(alerts).values(**values).returning(alerts.c.id)).first() is not None

    def update_alert(
        self,
        camera: str,
        rule: str,
        start_time: str,
        share: float,
        people: int,
        end_time: str | None,
        conn: Connection,
    ) -> None:
        """Raise the episode's peak and people, and set its end when it cleared."""
        key = (alerts.c.camera == camera) & (alerts.c.rule == rule) & (alerts.c.start_time == start_time)
        values: dict[str, Any] = {
            "peak_unmasked_share": sa.func.max(alerts.c.peak_unmasked_share, share)
            if self.dialect == "sqlite"
            else sa.func.greatest(alerts.c.peak_unmasked_share, share),
            "people": sa.func.max(alerts.c.people, people)
            if self.dialect == "sqlite"
            else sa.func.greatest(alerts.c.people, people),
        }
        if end_time is not None:
            values["end_time"] = end_time
        conn.execute(alerts.update().where(key).values(**values))

    def read(self, table: sa.Table, camera: str | None = None) -> list[dict[str, Any]]:
        """Every row of a table (for one camera), in key order: for tests and small tools."""
        query = sa.select(table)
        if camera is not None:
            query = query.where(table.c.camera == camera)
        order = [table.c[c] for c in ("camera", "start_time", "time", "frame") if c in table.c]
        with self.engine.connect() as conn:
            return [dict(r._mapping) for r in conn.execute(query.order_by(*order))]

    def close(self) -> None:
        self.engine.dispose()


def db_error(e: sa.exc.DBAPIError) -> str:
    """The first line of a driver's error: what a one-line message can say ("database is locked")."""
    return str(e.orig).strip().splitlines()[0] if e.orig is not None else str(e).splitlines()[0]


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")  # readers (the report) do not block the writer
    cur.execute("PRAGMA synchronous=NORMAL")  # with WAL: durable at each checkpoint, never corrupt
    cur.close()


def open_store(url_or_file: str | Path, create: bool = True, timeout: float = 10.0) -> Store:
    """Connect, check the database is one maskwatch can use, and create or upgrade its tables.

    A corrupt file, a locked database, a server that does not answer or a database of a newer maskwatch is
    a :class:`MaskwatchError` (one line), raised before any video is opened. ``timeout``: how long to
    wait for a lock or a connection."""
    url = database_url(url_or_file)
    try:
        engine = sa.create_engine(
            url,
            connect_args={"timeout": timeout}
            if url.startswith("sqlite")
            else {"connect_timeout": max(1, round(timeout))},
        )
    except (sa.exc.ArgumentError, sa.exc.NoSuchModuleError, ImportError) as e:
        raise MaskwatchError(f"{url_or_file}: not a database URL or file ({e})") from None
    if engine.dialect.name == "sqlite":
        if url.startswith("sqlite:///") and (path := Path(url.removeprefix("sqlite:///"))).parent:
            if not path.parent.is_dir():
                raise MaskwatchError(f"{url_or_file}: folder {path.parent} does not exist")
            if not create and not path.is_file():
                raise MaskwatchError(f"{url_or_file}: no such database")
        sa.event.listen(engine, "connect", _sqlite_pragmas)
    elif engine.dialect.name != "postgresql":
        raise MaskwatchError(f"{url_or_file}: unsupported database (use a SQLite file or PostgreSQL URL)")
    try:
        _migrate(engine)
    except sa.exc.DBAPIError as e:
        engine.dispose()
        raise MaskwatchError(f"{url_or_file}: cannot use the database ({db_error(e)})") from None
    return Store(engine)


def _migrate(engine: Engine) -> None:
    """Create a new database at the current version, or upgrade an older one; refuse a newer one."""
    with engine.begin() as conn:
        names = set(sa.inspect(conn).get_table_names())
        if "schema_version" not in names:
            if names & {"windows", "alerts", "detections"}:
                raise MaskwatchError(
                    f"{engine.url.render_as_string(hide_password=True)}: has monitor tables but no "
                    "schema_version (not written by maskwatch)"
                )
            metadata.create_all(conn)
            conn.execute(schema_version.insert().values(version=SCHEMA_VERSION))
            return
        version = conn.execute(sa.select(sa.func.max(schema_version.c.version))).scalar() or 0
    if version > SCHEMA_VERSION:
        raise MaskwatchError(
            f"the database is at schema version {version}, newer than this maskwatch ({SCHEMA_VERSION}): "
            "upgrade maskwatch"
        )
    while version < SCHEMA_VERSION:
        with engine.begin() as conn:
            for statement in UPGRADES[version]:
                conn.execute(sa.text(statement))
            conn.execute(schema_version.update().values(version=version + 1))
        log.info("database upgraded to schema version %d", version + 1)
        version += 1
