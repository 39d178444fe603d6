"""Shared fixtures. ``shared`` is the ``../shared`` folder of data and weights the project may use but not
ship; tests that need it skip without it, and fail instead when MASKWATCH_REQUIRE_DATA=1 (CI)."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
KAGGLE_MERGE = "without_mask,mask_weared_incorrect=no_mask"  # the README's --merge for the Kaggle set
# for `python -m maskwatch` in a subprocess: this checkout's package, installed or not
SUBPROCESS_ENV = {**os.environ, "PYTHONPATH": str(ROOT)}


@pytest.fixture(scope="session")
def shared() -> Path:
    path = Path(os.environ.get("MASKWATCH_SHARED", ROOT.parent / "shared"))
    if not (path / "data" / "face-mask-kaggle").is_dir():
        if os.environ.get("MASKWATCH_REQUIRE_DATA") == "1":
            pytest.fail(f"MASKWATCH_REQUIRE_DATA=1 but {path} has no data/face-mask-kaggle")
        pytest.skip(f"{path} not found")
    return path


@pytest.fixture(scope="session")
def kaggle(shared: Path) -> Path:
    return shared / "data" / "face-mask-kaggle"


@pytest.fixture(autouse=True, scope="session")
def _private_cache(tmp_path_factory: pytest.TempPathFactory) -> None:
    """Cached ONNX exports of test checkpoints go to a temporary folder, not the user's ~/.cache."""
    os.environ["MASKWATCH_CACHE_DIR"] = str(tmp_path_factory.mktemp("cache"))


@pytest.fixture(autouse=True, scope="session")
def _ctrl_c_reaches_children() -> None:
    """Tests that press Ctrl-C on a child (SIGINT) need it delivered as in a terminal. A test run started
    in the background by a non-interactive shell (``.ci/run &``) inherits SIGINT ignored, and so would every
    child, which would then run to its end (exit 0) instead of stopping: measured, two such failures. A
    handler (not an ignore) is reset to the default by exec, so children see SIGINT as a terminal sends it."""
    if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)


@pytest.fixture(scope="session")
def videos(shared: Path) -> Path:
    """The unlabelled real clips in ``../shared/videos``."""
    return shared / "videos"


@pytest.fixture(scope="session")
def dev_model(shared: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A development checkpoint (a real face detector, class head nudged by seeded noise), built once."""
    from tests.media import make_dev_checkpoint

    return make_dev_checkpoint(shared, tmp_path_factory.mktemp("model") / "dev.pt")


@pytest.fixture(scope="session")
def dev_onnx(dev_model: Path) -> Path:
    """The same model exported once, so runs on the ONNX backend do not each pay for an export."""
    from maskwatch.models.export import export_onnx
    from maskwatch.models.registry import load_detector

    return export_onnx(load_detector(dev_model), dev_model.with_suffix(".onnx"))


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[str]:
    """A throwaway PostgreSQL cluster (Debian's ``postgresql`` package) on a Unix socket in /tmp, for the
    whole session; yields the socket folder. initdb refuses root, so as root it runs as ``postgres``."""
    bins = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"))
    if not bins:
        pytest.skip("PostgreSQL server binaries not installed (apt-get install postgresql)")
    bindir = bins[-1].parent
    root = Path(tempfile.mkdtemp(prefix="maskwatch-pg-"))
    root.chmod(0o777)
    as_user: list[str] = []
    if os.geteuid() == 0:
        shutil.chown(root, "postgres")
        as_user = ["runuser", "-u", "postgres", "--"]
    data, sock = root / "data", root

    def pg(*args: str) -> None:
        # The server inherits pg_ctl's stdout: with a pipe, waiting for pg_ctl would wait for the server.
        subprocess.run([*as_user, *args], check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    pg(str(bindir / "initdb"), "-D", str(data), "-U", "postgres", "-A", "trust")
    options = f"-k {sock} -c listen_addresses='' -c fsync=off"
    pg(str(bindir / "pg_ctl"), "-D", str(data), "-l", str(root / "log"), "-o", options, "-w", "start")
    try:
        yield str(sock)
    finally:
        subprocess.run(
            [*as_user, str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"], check=False
        )
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def postgres_url(postgres_server: str) -> str:
    """A fresh, empty database on the session's server, as a SQLAlchemy URL."""
    import psycopg

    name = f"test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(f"host={postgres_server} user=postgres dbname=postgres", autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    return f"postgresql+psycopg://postgres@/{name}?host={postgres_server}"
