"""Decoding the data once: every image of the train and validation folders, one file at a
time (unusable files skipped and listed), the validation folder split into validation and
test per class, as in-memory splits shared by every run of a process."""

from __future__ import annotations

import functools
import hashlib
import logging
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from catdog import CatdogError
from catdog.data.fetch import resolve_root
from catdog.data.images import BadImage, decode, list_images
from catdog.schema import DataConfig

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Split:
    images: np.ndarray  # uint8 (n, height, width, 3), decoded once
    labels: np.ndarray  # int32, (n,)
    ids: np.ndarray | None = None  # str (n,): the file of each image, relative to its split folder
    skipped: tuple = ()  # (file, reason) of each file that could not be used

    def __len__(self) -> int:
        return len(self.labels)

    def subset(self, rows) -> Split:
        return Split(self.images[rows], self.labels[rows], None if self.ids is None else self.ids[rows])

    def counts(self, class_names) -> dict[str, int]:
        return {name: int((self.labels == i).sum()) for i, name in enumerate(class_names)}


SPLIT_FOLDERS = {"train": "train", "val": "validation", "test": "validation"}


@dataclass(frozen=True)
class StudyData:
    train: Split
    val: Split
    test: Split
    class_names: tuple[str, ...]
    source: str
    skipped: tuple = ()  # (file under the source folder, reason) of each unusable file

    @property
    def image_size(self) -> tuple[int, int]:
        return tuple(self.train.images.shape[1:3])

    @property
    def majority_class(self) -> int:
        """The class a constant guesser would learn from the training labels."""
        return int(np.bincount(self.train.labels, minlength=len(self.class_names)).argmax())

    @property
    def baseline_accuracy(self) -> float:
        """Test accuracy of always guessing the training majority class."""
        return float((self.test.labels == self.majority_class).mean())

    def splits(self) -> dict[str, Split]:
        return {"train": self.train, "val": self.val, "test": self.test}

    def summary(self) -> dict[str, int]:
        return {
            f"n_{split}_{name}": count
            for split, data in self.splits().items()
            for name, count in data.counts(self.class_names).items()
        }

    @functools.cached_property
    def data_id(self) -> str:
        """Content hash of every split's image files and labels, whatever size they are
        decoded at: runs at 160 and 224 px on the same images share it, and a report can
        compare them image by image."""
        digest = hashlib.sha256()
        for split, data in self.splits().items():
            folder = Path(self.source) / SPLIT_FOLDERS[split]
            digest.update(split.encode())
            for file, label in zip(data.ids, data.labels):
                digest.update(f"{file}\0{label}\0".encode())
                digest.update((folder / file).read_bytes())
        return digest.hexdigest()[:16]

    @functools.cached_property
    def data_hash(self) -> str:
        """Content hash of every split's pixels and labels (the split itself included)."""
        digest = hashlib.sha256()
        for split, data in self.splits().items():
            digest.update(split.encode())
            digest.update(np.ascontiguousarray(data.images).data)
            digest.update(data.labels.astype(np.int32).tobytes())
        return digest.hexdigest()[:16]


def load_folder(folder, image_size, class_names, require_every_class: bool = True) -> Split:
    """Decode every image of FOLDER/<class>/** once, resized as the reference does. Files
    that are not usable images are skipped with a warning and listed in `Split.skipped`."""
    folder = Path(folder)
    if not folder.is_dir():
        raise CatdogError(f"{folder} is not a folder")
    missing = [name for name in class_names if not (folder / name).is_dir()]
    if missing:
        raise CatdogError(
            f"{folder} has no {'/, '.join(missing)}/ folder (expected one per class: {', '.join(class_names)})"
        )
    extra = sorted(p.name for p in folder.iterdir() if p.is_dir() and p.name not in class_names)
    if extra:
        log.warning("%s: ignoring folders that are not one of the classes %s: %s", folder, list(class_names), extra)
    images, labels, ids, skipped = [], [], [], []
    for label, name in enumerate(class_names):
        for path in list_images(folder / name):
            image_id = path.relative_to(folder).as_posix()
            try:
                images.append(decode(path, image_size))
            except (BadImage, OSError) as exc:
                log.warning("Skipping %s: %s", path, exc)
                skipped.append((image_id, str(exc)))
                continue
            labels.append(label)
            ids.append(image_id)
    if not images:
        raise CatdogError(f"{folder} holds no usable images")
    counts = np.bincount(labels, minlength=len(class_names))
    if require_every_class and not counts.all():
        empty = [f"{name}/" for name, n in zip(class_names, counts) if not n]
        raise CatdogError(f"{folder}: {', '.join(empty)} holds no usable images; every class needs some")
    log.info("Decoded %d images from %s%s", len(images), folder, f" ({len(skipped)} skipped)" if skipped else "")
    return Split(np.stack(images), np.asarray(labels, np.int32), np.asarray(ids), tuple(skipped))


def split_off_test(split: Split, fraction: float, seed: int) -> tuple[Split, Split]:
    """Per-class random hold-out: (rest, test), identical for a given seed."""
    if not 0.0 < fraction < 1.0:
        raise CatdogError(f"data.test_fraction must be between 0 and 1, got {fraction}")
    rng = np.random.default_rng(seed)
    test_mask = np.zeros(len(split), dtype=bool)
    for label in np.unique(split.labels):
        members = np.flatnonzero(split.labels == label)
        n_test = int(round(len(members) * fraction))
        test_mask[rng.permutation(members)[:n_test]] = True
    return split.subset(~test_mask), split.subset(test_mask)


def load_study_data(data_cfg: DataConfig) -> StudyData:
    """The three splits of the configured data. Decoded once per process for the same files
    and settings: the runs of a multirun, or a search and its retrains, share one copy."""
    root = resolve_root(data_cfg)
    return _decode(
        root,
        _listing(root),
        tuple(data_cfg.image_size),
        tuple(data_cfg.class_names),
        float(data_cfg.test_fraction),
        int(data_cfg.split_seed),
    )


def _listing(root: Path) -> tuple:
    """Names, sizes and modification times of every file: changes when the images do."""
    out = []
    for folder, _, files in sorted(os.walk(root)):
        for name in sorted(files):
            stat = os.stat(os.path.join(folder, name))
            out.append((folder, name, stat.st_size, stat.st_mtime_ns))
    return tuple(out)


@functools.lru_cache(maxsize=1)
def _decode(root: Path, listing: tuple, image_size, class_names, test_fraction: float, split_seed: int) -> StudyData:
    log.info("Decoding images from %s", root)
    train = load_folder(root / SPLIT_FOLDERS["train"], image_size, class_names)
    validation = load_folder(root / SPLIT_FOLDERS["val"], image_size, class_names)
    val, test = split_off_test(validation, test_fraction, split_seed)
    for split in (train, val, test):
        split.images.flags.writeable = False  # shared by every run of this process
    skipped = tuple(
        (f"{folder}/{file}", why)
        for folder, part in (("train", train), ("validation", validation))
        for file, why in part.skipped
    )
    return StudyData(train, val, test, class_names, source=str(root), skipped=skipped)
