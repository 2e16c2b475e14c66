"""Fetching the data: a folder as given, or an archive downloaded once (http(s):// or
file://) and extracted once, safely; the folder that holds train/ and validation/."""

from __future__ import annotations

import logging
import os
import shutil
import socket
import tempfile
import zipfile
from pathlib import Path
from urllib.parse import urlparse

from catdog import CatdogError, RunFailure
from catdog.schema import DataConfig

log = logging.getLogger(__name__)


def resolve_root(data_cfg: DataConfig) -> Path:
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
