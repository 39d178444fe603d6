"""``maskwatch data split``: deterministic, stratified, leak-free (near-duplicates and frames of one video
stay on one side), and unchanged for the split a model is being trained on."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from maskwatch.cli import main
from maskwatch.data.formats import load_dataset
from maskwatch.data.split import SPLITS, popcount, split_dataset
from tests.data_synth import make_voc, write_image

ROOT = Path(__file__).resolve().parents[1]


def _spec() -> list:
    """40 distinct images; 'rare' in 4 of them, 'no_mask' in 10; frames of one video; one re-encoded copy."""
    spec = []
    for i in range(30):
        label = "rare" if i % 10 == 3 else "no_mask" if i % 3 == 0 else "mask"
        spec.append((f"photo{i:02d}.jpg", 48, 40, [(label, 4, 4, 30, 30), ("mask", 32, 2, 46, 20)]))
    spec += [(f"clip_t{t:08d}.jpg", 48, 40, [("mask", 5, 5, 25, 25)]) for t in range(0, 9000, 1000)]
    spec.append(("rare_extra.jpg", 48, 40, [("rare", 1, 1, 20, 20)]))
    return spec


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = make_voc(tmp_path_factory.mktemp("split"), _spec())
    # a near-duplicate: photo05 re-encoded at another size and quality under another name
    src = Image.open(root / "images" / "photo05.jpg")
    src.resize((96, 80)).save(root / "images" / "photo05_copy.jpg", quality=60)
    xml = (root / "annotations" / "photo05.xml").read_text().replace("photo05.jpg", "photo05_copy.jpg")
    (root / "annotations" / "photo05_copy.xml").write_text(
        xml.replace("<width>48", "<width>96").replace("<height>40", "<height>80")
    )
    return root


def _where(splits: dict[str, list[str]]) -> dict[str, str]:
    return {stem: name for name, stems in splits.items() for stem in stems}


def test_split_is_leak_free_stratified_and_deterministic(base: Path) -> None:
    ds = load_dataset(base)
    splits = split_dataset(ds, val=0.2, test=0.2, seed=0)
    where = _where(splits)
    assert sorted(where) == sorted(r.stem for r in ds), "every image in exactly one split"
    assert sum(len(v) for v in splits.values()) == len(ds)
    assert len({where[f"clip_t{t:08d}"] for t in range(0, 9000, 1000)}) == 1, "one video, one split"
    assert where["photo05"] == where["photo05_copy"], "near-duplicates together"
    rare_images = {r.stem for r in ds if "rare" in r.labels}
    assert {where[s] for s in rare_images} == set(SPLITS), "the rarest class reaches every split"
    assert split_dataset(ds, 0.2, 0.2, seed=0) == splits
    assert split_dataset(ds, 0.2, 0.2, seed=1) != splits
    assert split_dataset(ds, 0.0, 0.25, seed=0)["val"] == []


def test_split_cli_writes_files_and_prints_counts(base: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "s"
    assert (
        main(["data", "split", str(base), "--out", str(out), "--val", "0.2", "--test", "0.2", "--seed", "3"])
        == 0
    )
    text = capsys.readouterr().out
    files = {name: (out / f"{name}.txt").read_text().split() for name in SPLITS}
    assert files == split_dataset(load_dataset(base), 0.2, 0.2, seed=3)
    for name in SPLITS:
        assert f"split {name}: {len(files[name])} images" in text
    assert "| rare " in text
    assert main(["data", "split", str(base), "--out", str(out), "--val", "0.6", "--test", "0.5"]) == 1
    assert "must be in [0, 1) and sum to less than 1" in capsys.readouterr().err


def test_popcount_matches_python() -> None:
    values = np.random.default_rng(0).integers(0, 2**63, 1000, dtype=np.uint64) * np.uint64(2) + np.uint64(1)
    assert popcount(values).tolist() == [bin(int(v)).count("1") for v in values]
    assert popcount(np.array([], dtype=np.uint64)).shape == (0,)


def test_kaggle_split_is_unchanged(kaggle: Path, tmp_path: Path, capsys) -> None:
    """A model is being trained on splits/face-mask-kaggle: the command must still produce exactly it."""
    assert main(["data", "split", str(kaggle), "--out", str(tmp_path), "--seed", "0"]) == 0
    for name in SPLITS:
        assert (tmp_path / f"{name}.txt").read_text() == (
            ROOT / "splits" / "face-mask-kaggle" / f"{name}.txt"
        ).read_text()
    text = capsys.readouterr().out
    assert (
        "split train: 500 images" in text
        and "split val: 119 images" in text
        and "split test: 84 images" in text
    )


def test_near_duplicate_hash_survives_reencoding(tmp_path: Path) -> None:
    from maskwatch.data.split import dhash

    a = write_image(tmp_path / "a.png", 64, 48, seed=1)
    Image.open(a).resize((128, 96)).save(tmp_path / "b.jpg", quality=50)
    other = write_image(tmp_path / "c.png", 64, 48, seed=2)
    assert bin(dhash(a) ^ dhash(tmp_path / "b.jpg")).count("1") <= 6
    assert bin(dhash(a) ^ dhash(other)).count("1") > 12
