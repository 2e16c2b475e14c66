"""Data sources that go wrong: dead URLs, archives that are not, or are half, or escape."""

import shutil
import socket
import time
import zipfile
from pathlib import Path

import pytest

from catdog import CatdogError
from catdog.data import load_study_data
from helpers import compose

pytestmark = pytest.mark.unit


def _load(url, tmp_path, *extra):
    return load_study_data(compose(f"data.url={url}", f"data.cache_dir={tmp_path / 'cache'}", *extra).data)


def test_a_url_that_does_not_answer_times_out(tmp_path):
    with socket.socket() as server:  # listens, accepts the connection, never answers
        server.bind(("127.0.0.1", 0))
        server.listen()
        url = f"http://127.0.0.1:{server.getsockname()[1]}/data.zip"
        start = time.monotonic()
        with pytest.raises(CatdogError, match=f"could not fetch data.url {url}"):
            _load(url, tmp_path, "data.download_timeout=2")
        assert time.monotonic() - start < 15


def test_a_file_that_is_not_a_zip(tmp_path):
    fake = tmp_path / "fake.zip"
    fake.write_text("<html>not found</html>")
    with pytest.raises(CatdogError, match="is not a zip archive"):
        _load(fake.as_uri(), tmp_path)


def test_a_zip_without_the_splits(tmp_path):
    with zipfile.ZipFile(tmp_path / "other.zip", "w") as zf:
        zf.writestr("other/readme.txt", "no images here")
    with pytest.raises(CatdogError, match="has no train/ and validation/ folders"):
        _load((tmp_path / "other.zip").as_uri(), tmp_path)


def test_a_zip_whose_members_escape_is_refused(tmp_path):
    with zipfile.ZipFile(tmp_path / "evil.zip", "w") as zf:
        zf.writestr("../../escaped.txt", "gotcha")
    with pytest.raises(CatdogError, match="would be extracted outside the cache folder; refused"):
        _load((tmp_path / "evil.zip").as_uri(), tmp_path)
    assert not list(tmp_path.rglob("escaped.txt"))


def test_a_half_downloaded_archive_is_fetched_again(small_data, tmp_path):
    archive = shutil.make_archive(str(tmp_path / "subset"), "zip", small_data.parent)
    cached = tmp_path / "cache" / "datasets" / "subset.zip"
    cached.parent.mkdir(parents=True)
    whole = Path(archive).read_bytes()
    cached.write_bytes(whole[: len(whole) // 3])  # what a killed download leaves behind
    data = _load(f"file://{archive}", tmp_path)
    assert len(data.train) == 48 and zipfile.is_zipfile(cached) and cached.stat().st_size == len(whole)


def test_the_archive_is_extracted_once_and_decoded_once(small_data, tmp_path):
    """Every run of a multirun resolves the data again: it must find the same files, so that
    the process decodes them once (Keras' own extraction rewrote them on every call)."""
    archive = shutil.make_archive(str(tmp_path / "subset"), "zip", small_data.parent)
    first = _load(f"file://{archive}", tmp_path)
    extracted = tmp_path / "cache" / "datasets" / "subset_extracted"
    stamps = {p: p.stat().st_mtime_ns for p in extracted.rglob("*.jpg")}
    assert len(stamps) == 48 + 40
    assert _load(f"file://{archive}", tmp_path) is first
    assert {p: p.stat().st_mtime_ns for p in extracted.rglob("*.jpg")} == stamps
    assert not [p for p in extracted.parent.iterdir() if p.name.startswith(".")]  # no partial copy left
