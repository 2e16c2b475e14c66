"""Images on disk -> decoded in-memory splits -> tf.data pipelines."""

from __future__ import annotations

import functools
import hashlib
import logging
import os
import shutil
import socket
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

import numpy as np

from catdog import CatdogError, RunFailure
from catdog.data.images import BadImage, decode, list_images

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


def resolve_root(data_cfg) -> Path:
    """Folder holding train/ and validation/: `data.dir`, else the extracted `data.url`."""
    if data_cfg.dir:
        root = Path(data_cfg.dir).expanduser()
        if not root.is_dir():
            raise CatdogError(f"data.dir {root} is not a folder")
    else:
        root = _download(data_cfg.url, data_cfg.cache_dir, data_cfg.download_timeout)
    return _find_dataset_root(root)


def _download(url: str, cache_dir: str | None, timeout: float) -> Path:
    """Fetch URL's zip once into the Keras cache (again if the cached copy is not a whole
    zip: a download killed half-way) and extract it once; returns the extracted folder."""
    import keras

    parsed = urlparse(url)
    if parsed.scheme == "file" and not Path(parsed.path).is_file():
        raise CatdogError(f"data.url {url}: no such file")
    fname = os.path.basename(parsed.path) or "dataset.zip"
    if cache_dir:
        # get_file silently falls back to /tmp/.keras when the folder does not exist yet.
        Path(cache_dir).expanduser().mkdir(parents=True, exist_ok=True)

    def fetch(**kwargs) -> str:
        previous = socket.getdefaulttimeout()
        socket.setdefaulttimeout(timeout)  # urlretrieve has no timeout of its own: a dead server hangs
        try:
            return keras.utils.get_file(fname=fname, origin=url, cache_dir=cache_dir, **kwargs)
        except Exception as exc:  # get_file raises bare Exception on fetch failures
            raise RunFailure(f"could not fetch data.url {url}: {str(exc).splitlines()[0]}") from exc
        finally:
            socket.setdefaulttimeout(previous)

    archive = fetch()
    if not zipfile.is_zipfile(archive):
        log.warning("%s is not a whole zip archive (an interrupted download?): fetching it again", archive)
        archive = fetch(force_download=True)
        if not zipfile.is_zipfile(archive):
            Path(archive).unlink(missing_ok=True)
            raise CatdogError(f"data.url {url} is not a zip archive")
    _refuse_unsafe_members(archive, url)
    return _extract_once(archive)


def _extract_once(archive: str) -> Path:
    """ARCHIVE's contents in a folder beside it, extracted by the first call only.

    Keras' get_file(extract=True) extracts again on every call (keras-team/keras#10436):
    each run rewrote every image, so the per-process decode cache never hit and a run could
    read files that a concurrent run was rewriting. Extracting into a temporary folder and
    renaming it into place means a folder under the final name is always whole."""
    target = Path(archive).with_name(Path(archive).name.split(".")[0] + "_extracted")  # Keras' name
    if target.is_dir():
        return target
    partial = tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}-")
    try:
        shutil.unpack_archive(archive, partial, format="zip")
        os.rename(partial, target)
    except OSError as exc:
        if not target.is_dir():  # else a concurrent run renamed its copy first: use that
            raise RunFailure(f"could not extract {archive}: {exc}") from exc
    finally:
        shutil.rmtree(partial, ignore_errors=True)
    return target


def _refuse_unsafe_members(archive: str, url: str) -> None:
    with zipfile.ZipFile(archive) as zf:
        for name in zf.namelist():
            if name.startswith(("/", "\\")) or ".." in Path(name).parts:
                raise CatdogError(
                    f"data.url {url}: member {name!r} would be extracted outside the cache folder; refused"
                )


def _find_dataset_root(root: Path) -> Path:
    candidates = [root, *sorted(p for p in root.iterdir() if p.is_dir())]
    for candidate in candidates:
        if (candidate / "train").is_dir() and (candidate / "validation").is_dir():
            return candidate
    raise CatdogError(f"{root} has no train/ and validation/ folders")


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


def load_study_data(data_cfg) -> StudyData:
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


def to_dataset(split: Split, batch_size: int, shuffle_seed: int | None = None):
    """Batches of a split's images as float32; reshuffled every epoch when a seed is given."""
    return batches(split.images, split.labels, batch_size, shuffle_seed)


def batches(inputs: np.ndarray, labels: np.ndarray, batch_size: int, shuffle_seed: int | None = None):
    """Batches of INPUTS (images, or cached features) as float32, with their LABELS."""
    import tensorflow as tf

    ds = tf.data.Dataset.from_tensor_slices((inputs, labels))
    if shuffle_seed is not None:
        ds = ds.shuffle(len(labels), seed=shuffle_seed, reshuffle_each_iteration=True)
    return no_autotune(ds.batch(batch_size).map(lambda x, y: (tf.cast(x, tf.float32), y)).prefetch(1))


def no_autotune(ds):
    """tf.data's autotuner stalls some epochs for seconds on small CPU machines; the data
    is already in memory, so a fixed one-batch prefetch is all a pipeline needs."""
    import tensorflow as tf

    options = tf.data.Options()
    options.autotune.enabled = False
    return ds.with_options(options)
