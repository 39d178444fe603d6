"""``maskwatch detect`` never destroys a user's data (issue 10, "Data safety" 1-8): outputs that are, hold
or lie inside an input are refused; folders maskwatch did not write are never replaced; pipes, devices
and stdout are streamed to, not renamed over; SIGTERM/SIGHUP finalise like Ctrl-C; unwritable outputs,
unreadable and truncated inputs, and still-image URLs are handled before or during the run as the README
says. Real files throughout: images of the Kaggle base, clips of ../shared/videos, a real HTTP server, a
real named pipe, real signals sent to a real subprocess.
"""

from __future__ import annotations

import csv
import functools
import hashlib
import http.server
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import av
import pytest

from maskwatch.cli import main
from maskwatch.io import OUTPUT_MARKER
from tests.conftest import SUBPROCESS_ENV
from tests.media import read_jsonl, read_video

FAST = ["--backend", "torch", "--imgsz", "160"]


def digest(path: Path) -> dict[str, str]:
    """Every file under ``path`` (or the file itself) by content, to prove nothing was touched."""
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
    return {str(p): hashlib.sha256(p.read_bytes()).hexdigest() for p in files}


def one_line_error(err: str) -> None:
    assert err.startswith("maskwatch: error: ") and err.count("\n") == 1 and "Traceback" not in err, err


@pytest.fixture
def imgs(kaggle: Path, tmp_path: Path) -> Path:
    folder = tmp_path / "imgs"
    folder.mkdir()
    for name in ("maksssksksss10.jpg", "maksssksksss11.jpg"):
        shutil.copy(kaggle / "images" / name, folder / name)
    return folder


@pytest.fixture
def clip(videos: Path, tmp_path: Path) -> Path:
    path = tmp_path / "clip.mp4"
    shutil.copy(videos / "street-mask-720x404.mp4", path)
    return path


# 1. an output that is, lies inside or contains an input ------------------------------------------------


IMAGE_CASES = [
    ("imgs", "--output", "imgs"),
    ("imgs", "--output", "imgs/annotated"),
    ("imgs", "--output", "."),
    ("imgs", "--save-txt", "imgs"),
    ("imgs", "--jsonl", "imgs/../imgs/maksssksksss10.jpg"),
    ("imgs", "--csv", "link-to-imgs/maksssksksss11.jpg"),
    ("imgs", "--summary", "imgs/maksssksksss10.jpg"),
]
VIDEO_CASES = [
    ("clip.mp4", option, spelling)
    for option in ("--output", "--jsonl", "--csv", "--summary", "--save-txt")
    for spelling in ("clip.mp4", "sub/../clip.mp4", "link.mp4")
]


@pytest.mark.parametrize("source, option, target", IMAGE_CASES + VIDEO_CASES)
def test_output_over_an_input_is_refused(
    source: str,
    option: str,
    target: str,
    imgs: Path,
    clip: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The model named does not exist: the refusal must come before it would be loaded."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "sub").mkdir()
    (tmp_path / "link-to-imgs").symlink_to(imgs)
    (tmp_path / "link.mp4").symlink_to(clip)
    before = {**digest(imgs), **digest(clip)}
    rc = main(["detect", source, "--model", "no-such-model.pt", option, target])
    err = capsys.readouterr().err
    one_line_error(err)
    assert rc == 1 and "input" in err and "no-such-model" not in err
    assert {**digest(imgs), **digest(clip)} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "clip.mp4",
        "imgs",
        "link-to-imgs",
        "link.mp4",
        "sub",
    ]


# 2. never delete files maskwatch did not write ----------------------------------------------------------


@pytest.mark.parametrize("option", ["--output", "--save-txt"])
def test_foreign_folder_is_never_replaced(
    option: str, imgs: Path, dev_model: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    outx = tmp_path / "outx"
    outx.mkdir()
    (outx / "holiday.jpg").write_bytes(b"the user's own photo")
    rc = main(["detect", str(imgs), "--model", str(dev_model), *FAST, option, str(outx)])
    err = capsys.readouterr().err
    one_line_error(err)
    assert rc == 1 and "not written by maskwatch" in err
    assert [p.name for p in outx.iterdir()] == ["holiday.jpg"]
    assert (outx / "holiday.jpg").read_bytes() == b"the user's own photo"
    # an empty folder may be used, and what maskwatch wrote there may be replaced by the next run
    (outx / "holiday.jpg").unlink()
    for _ in range(2):
        assert main(["-q", "detect", str(imgs), "--model", str(dev_model), *FAST, option, str(outx)]) == 0
        assert (outx / OUTPUT_MARKER).is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["imgs", "outx"], "no temporary folder left"


def test_data_convert_and_detect_share_the_folder_rule(tmp_path: Path) -> None:
    """One rule: a folder holding a user's own files is refused, with the same words, by ``data convert``'s
    destination check and by detect's folder sinks, and the user's file is left as it was."""
    from maskwatch.data.formats import check_destination
    from maskwatch.data.record import Dataset
    from maskwatch.errors import MaskwatchError
    from maskwatch.video.sinks import ImageFolderSink

    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep")
    with pytest.raises(MaskwatchError) as convert:
        check_destination(Dataset([], []), mine)
    with pytest.raises(MaskwatchError) as detect:
        ImageFolderSink(mine)
    assert "was not written by maskwatch" in str(convert.value)
    assert str(convert.value).split(" (no ")[0] == str(detect.value).split(" (no ")[0]
    assert (mine / "notes.txt").read_text() == "keep"


# 3. pipes, devices and stdout are streamed to, never renamed over --------------------------------------


def _detect_cmd(dev_model: Path, source: Path, *extra: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "maskwatch",
        "detect",
        str(source),
        "--model",
        str(dev_model),
        *FAST,
        *extra,
    ]


@pytest.mark.slow
def test_jsonl_to_stdout_streams_and_survives_head(dev_model: Path, videos: Path, tmp_path: Path) -> None:
    """``--jsonl -`` writes clean JSONL on stdout (the report goes to stderr), line by line: a reader that
    takes one line and leaves (``| head -1``) ends the run quietly, long before the clip's end."""
    clip = videos / "group-mask-960x506.mp4"
    cmd = _detect_cmd(dev_model, clip, "--jsonl", "-")
    proc = subprocess.Popen(
        cmd, cwd=tmp_path, env=SUBPROCESS_ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    assert proc.stdout is not None
    first = json.loads(proc.stdout.readline())
    assert first["frame"] == 0 and isinstance(first["detections"], list)
    proc.stdout.close()  # what head does after its line
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err.decode()
    assert b"Traceback" not in err and b"BrokenPipe" not in err
    assert not list(tmp_path.iterdir()), "no file named '-' nor anything else"

    out = subprocess.run(_detect_cmd(dev_model, clip, "--jsonl", "-", "--max-frames", "5"), cwd=tmp_path,
                         env=SUBPROCESS_ENV, capture_output=True, timeout=120)  # fmt: skip
    assert out.returncode == 0
    lines = [json.loads(line) for line in out.stdout.decode().splitlines()]
    assert [r["frame"] for r in lines] == list(range(5)), "stdout carries the JSONL and nothing else"
    assert b"5 frames in" in out.stderr


@pytest.mark.parametrize("second", ["--csv", "--summary"])
def test_two_outputs_on_one_stream_are_refused(
    second: str, clip: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """JSONL and another format interleaved on stdout would be neither; refused before work."""
    rc = main(["detect", str(clip), "--model", str(tmp_path / "absent.pt"), "--jsonl", "-", second, "-"])
    err = capsys.readouterr().err
    one_line_error(err)
    assert rc == 1 and "its own path" in err


def test_named_pipe_reader_gets_lines(dev_model: Path, imgs: Path, tmp_path: Path) -> None:
    fifo = tmp_path / "detections.fifo"
    os.mkfifo(fifo)
    got: list[str] = []
    reader = threading.Thread(target=lambda: got.extend(fifo.read_text().splitlines()), daemon=True)
    reader.start()
    rc = main(["-q", "detect", str(imgs), "--model", str(dev_model), *FAST, "--jsonl", str(fifo)])
    reader.join(timeout=30)
    assert rc == 0
    assert [json.loads(line)["file"] for line in got] == ["maksssksksss10.jpg", "maksssksksss11.jpg"]
    assert fifo.is_fifo() and sorted(p.name for p in tmp_path.iterdir()) == ["detections.fifo", "imgs"]


@pytest.mark.parametrize("device", ["/dev/stdout", pytest.param("/dev/null", marks=pytest.mark.slow)])
def test_link_to_a_device_stays_a_link(device: str, dev_model: Path, imgs: Path, tmp_path: Path) -> None:
    """As ``--jsonl /dev/stdout`` run as root would: the link to the device is written through, not
    replaced (tested through a link of our own, so a regression cannot break this machine's /dev)."""
    link = tmp_path / "out.jsonl"
    link.symlink_to(device)
    out = subprocess.run(_detect_cmd(dev_model, imgs, "--jsonl", str(link)), cwd=tmp_path, env=SUBPROCESS_ENV,
                         capture_output=True, timeout=120)  # fmt: skip
    assert out.returncode == 0, out.stderr.decode()
    assert link.is_symlink() and os.readlink(link) == device
    if device == "/dev/stdout":
        assert [json.loads(x)["file"] for x in out.stdout.decode().splitlines()] == [
            "maksssksksss10.jpg",
            "maksssksksss11.jpg",
        ]
    assert not list(tmp_path.glob(".*.tmp"))


# 4. SIGTERM and SIGHUP finalise like Ctrl-C (SIGINT) ----------------------------------------


@pytest.mark.parametrize(
    "sig",
    [
        signal.SIGINT,
        pytest.param(signal.SIGTERM, marks=pytest.mark.slow),
        pytest.param(signal.SIGHUP, marks=pytest.mark.slow),
    ],
)
def test_stop_signals_finalise_outputs(
    sig: signal.Signals, dev_model: Path, videos: Path, tmp_path: Path
) -> None:
    clip = videos / "group-mask-960x506.mp4"
    out, jsonl, table, report = (tmp_path / n for n in ("out.mp4", "d.jsonl", "d.csv", "s.json"))
    cmd = _detect_cmd(dev_model, clip, "--output", str(out), "--jsonl", str(jsonl))
    cmd += ["--csv", str(table), "--summary", str(report)]
    proc = subprocess.Popen(cmd, cwd=tmp_path, env=SUBPROCESS_ENV, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:  # wait until frames are being written
        tmp = list(tmp_path.glob(".d.jsonl.*.tmp"))
        if tmp and tmp[0].stat().st_size > 2000:
            break
        time.sleep(0.1)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "Traceback" not in err
    summary = json.loads(report.read_text())
    n_in = read_video(clip)[0]
    assert summary["interrupted"] is True and 0 < summary["frames"] < n_in
    lines = read_jsonl(jsonl)
    assert [r["frame"] for r in lines] == list(range(summary["frames"]))
    rows = list(csv.DictReader(table.open()))
    assert len(rows) == sum(len(r["detections"]) for r in lines) == summary["faces"]["total"]
    with av.open(str(out)) as c:  # the video is decodable to its last frame
        assert sum(1 for _ in c.decode(c.streams.video[0])) == summary["frames"]
    assert not list(tmp_path.glob(".*")), "no temporary file left behind"


# 5. unwritable outputs: one line, before any work ------------------------------------------------------


@pytest.mark.parametrize("option", ["--output", "--jsonl", "--csv", "--summary", "--save-txt"])
@pytest.mark.parametrize("where", ["under-a-file", "uncreatable-parent"])
def test_unwritable_output_fails_before_work(
    option: str, where: str, clip: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A path under a regular file, and one whose parent cannot be created (``/proc`` refuses even root,
    for whom a chmod'ed folder is still writable). The model named does not exist: the output error must
    come first, so nothing heavy ran."""
    (tmp_path / "notes.txt").write_text("a file")
    target = {
        "under-a-file": str(tmp_path / "notes.txt" / "sub" / "out.x"),
        "uncreatable-parent": "/proc/maskwatch-no-such-dir/out.x",
    }[where]
    rc = main(["detect", str(clip), "--model", str(tmp_path / "absent.pt"), option, target])
    err = capsys.readouterr().err
    one_line_error(err)
    assert rc == 1 and target in err and "cannot be written" in err
    assert (tmp_path / "notes.txt").read_text() == "a file"


# 6. a URL serving a still image ------------------------------------------------------------------------


@pytest.fixture
def http_folder(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    root = tmp_path / "www"
    root.mkdir()
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", root
    server.shutdown()
    server.server_close()


def test_url_of_a_still_image_is_one_frame(
    http_folder: tuple[str, Path],
    kaggle: Path,
    dev_model: Path,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    from maskwatch.video.pipeline import detect

    base, root = http_folder
    shutil.copy(kaggle / "images" / "maksssksksss10.jpg", root / "a.jpg")
    jsonl = tmp_path / "a.jsonl"
    start = time.monotonic()
    s = detect(f"{base}/a.jpg", dev_model, jsonl=jsonl, output=tmp_path / "annotated", backend="torch",
               imgsz=160, reconnect=30, progress=False)  # fmt: skip
    assert time.monotonic() - start < 20, "not retried as a dropped stream"
    assert s.frames == 1 and not s.live and not s.interrupted
    assert [r["frame"] for r in read_jsonl(jsonl)] == [0]
    assert "reconnect" not in caplog.text
    assert [p.name for p in (tmp_path / "annotated").iterdir() if p.name != OUTPUT_MARKER] == ["a.jpg"]


# 7. unreadable images; the summary lists only files that exist ----------------------------------------


def test_unreadable_image_named_explicitly_is_an_error(
    tmp_path: Path, dev_model: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "zero.jpg").write_bytes(b"")
    out = tmp_path / "out"
    rc = main(["detect", str(tmp_path / "zero.jpg"), "--model", str(dev_model), "--output", str(out)])
    err = capsys.readouterr().err
    one_line_error(err)
    assert rc == 1 and "zero.jpg" in err and not out.exists()


def test_unreadable_images_in_a_folder_are_skipped_and_counted(
    imgs: Path, dev_model: Path, tmp_path: Path
) -> None:
    (imgs / "zero.jpg").write_bytes(b"")
    (imgs / "text.png").write_text("not a picture")
    report, out = tmp_path / "s.json", tmp_path / "out"
    rc = main(["-q", "detect", str(imgs), "--model", str(dev_model), *FAST, "--output", str(out),
               "--summary", str(report)])  # fmt: skip
    assert rc == 0
    summary = json.loads(report.read_text())
    assert summary["frames"] == 2
    assert summary["skipped_files"]["count"] == 2
    assert sorted(Path(p).name for p in summary["skipped_files"]["files"]) == ["text.png", "zero.jpg"]
    assert all(Path(p).exists() for p in summary["outputs"].values())


def test_max_frames_zero_lists_no_missing_output(clip: Path, dev_model: Path, tmp_path: Path) -> None:
    report, out, labels = tmp_path / "s.json", tmp_path / "out.mp4", tmp_path / "labels"
    rc = main(["-q", "detect", str(clip), "--model", str(dev_model), *FAST, "--max-frames", "0",
               "--output", str(out), "--save-txt", str(labels), "--summary", str(report)])  # fmt: skip
    assert rc == 0
    summary = json.loads(report.read_text())
    assert summary["frames"] == 0 and not out.exists() and not labels.exists()
    assert set(summary["outputs"]) == {"summary"}
    assert all(Path(p).exists() for p in summary["outputs"].values())


# 8. a truncated video says so --------------------------------------------------------------------------


def test_truncated_video_is_reported(
    videos: Path, dev_model: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from maskwatch.video.pipeline import detect

    data = (videos / "group-mask-960x506.mp4").read_bytes()  # moov first: a cut file still opens
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(data[: len(data) // 5])
    jsonl, report = tmp_path / "d.jsonl", tmp_path / "s.json"
    s = detect(cut, dev_model, jsonl=jsonl, summary=report, backend="torch", imgsz=160, progress=False)
    summary = json.loads(report.read_text())
    decoded, expected = summary["truncated"]["decoded"], summary["truncated"]["expected"]
    assert expected == read_video(videos / "group-mask-960x506.mp4")[0]
    assert 0 < decoded < expected and decoded == summary["frames"] == len(read_jsonl(jsonl))
    message = f"decoded {decoded} of {expected} frames (file truncated?)"
    assert message in caplog.text and message in s.text()


def test_whole_video_is_not_reported_truncated(clip: Path, dev_model: Path, tmp_path: Path) -> None:
    report = tmp_path / "s.json"
    assert main(["-q", "detect", str(clip), "--model", str(dev_model), *FAST, "--summary", str(report)]) == 0
    assert "truncated" not in json.loads(report.read_text())
