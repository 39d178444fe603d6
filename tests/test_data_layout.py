"""``maskwatch.data.layout``: the one image-discovery rule and the one reading of ``--split`` (a folder of
split files or one file), as every command that takes them sees them."""

from __future__ import annotations

from pathlib import Path

import pytest

from maskwatch.cli import main
from maskwatch.data.formats import load_dataset
from maskwatch.data.layout import find_images, image_files, is_image, read_splits, select_split
from maskwatch.errors import MaskwatchError
from maskwatch.video.sources import open_source
from tests.data_synth import make_voc, write_image


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    for name in ("b.jpg", "a.PNG", "c.JpEg", ".hidden.jpg", "._a.jpg"):
        write_image(tmp_path / name, 8, 8)
    for name in ("notes.txt", "clip.mp4"):
        (tmp_path / name).write_text("x")
    (tmp_path / "sub.jpg").mkdir()  # a folder with an image's name is not an image
    return tmp_path


def test_one_rule_known_extensions_any_case_no_hidden_files(folder: Path) -> None:
    expected = ["a.PNG", "b.jpg", "c.JpEg"]
    assert [p.name for p in image_files(folder)] == expected
    assert not is_image(folder / ".hidden.jpg") and is_image(folder / "x.TIFF")
    # prelabel (find_images) and detect (open_source) discover the same images
    assert [p.name for p in find_images(folder)] == expected
    assert sorted(p.name for p in find_images(str(folder / "*"))) == expected
    source = open_source(folder)
    assert sorted(p.name for p in source.paths) == expected
    assert sorted(p.name for p in open_source(str(folder / "*.*")).paths) == expected


def test_an_image_named_explicitly_is_taken_even_when_hidden(folder: Path) -> None:
    assert find_images(folder / ".hidden.jpg") == [folder / ".hidden.jpg"]
    with pytest.raises(MaskwatchError, match="no images found"):
        find_images(folder / "*.txt")


@pytest.fixture
def base(tmp_path: Path) -> Path:
    root = make_voc(tmp_path / "base")
    stems = sorted(p.stem for p in (root / "images").iterdir())
    (root / "splits").mkdir()
    (root / "splits" / "train.txt").write_text("".join(f"{s}\n" for s in stems[1:]))
    (root / "splits" / "test.txt").write_text(f"{stems[0]}\n")
    return root


def test_split_is_a_folder_or_one_file(base: Path) -> None:
    folder, test = base / "splits", base / "splits" / "test.txt"
    both = read_splits(folder)
    assert set(both) == {"train", "test"}
    assert read_splits(test) == {"test": both["test"]}
    assert select_split(folder) == select_split(test) == both["test"]
    assert select_split(folder, "train") == both["train"]
    with pytest.raises(MaskwatchError, match=r"no val\.txt"):
        select_split(folder, "val")
    with pytest.raises(MaskwatchError, match="split folder not found"):
        read_splits(base / "splits" / "nope.txt")


def test_data_stats_and_convert_take_a_split_file(
    base: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    test = base / "splits" / "test.txt"
    assert load_dataset(base, split=test).splits == {"test": read_splits(test)["test"]}
    assert main(["data", "stats", str(base), "--split", str(test)]) == 0
    out = capsys.readouterr().out
    assert "test" in out and "train" not in out
    assert (
        main(["data", "convert", str(base), str(tmp_path / "yolo"), "--to", "yolo", "--split", str(test)])
        == 0
    )
    assert (tmp_path / "yolo" / "splits" / "test.txt").read_text() == test.read_text()
    assert not (tmp_path / "yolo" / "splits" / "train.txt").exists()
