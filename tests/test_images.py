"""Real image files of every kind users drop into folders, made by the tests themselves."""

import json

import mlflow
import numpy as np
import pytest
from PIL import Image

from catdog import CatdogError, training
from catdog.data import images, load_folder
from helpers import store_overrides


def _picture(size=(48, 64), seed=0) -> Image.Image:
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, size=(*size, 3), dtype=np.uint8))


@pytest.fixture()
def zoo(tmp_path):
    """One folder per class with every kind of file, good and bad."""
    cats, dogs = tmp_path / "zoo" / "cats", tmp_path / "zoo" / "dogs"
    cats.mkdir(parents=True)
    dogs.mkdir()
    _picture().save(cats / "plain.jpg")
    _picture(seed=1).save(cats / "lossless.png")
    _picture(seed=2).save(cats / "anim.gif")
    _picture(seed=3).save(cats / "old.bmp")
    _picture(seed=4).save(cats / "modern.webp")
    _picture(seed=5).convert("L").save(cats / "gray.jpg")
    _picture(seed=6).convert("CMYK").save(cats / "print.jpg")
    Image.fromarray(np.full((32, 32), 32896, np.uint16)).save(dogs / "deep.png")  # 16-bit mid-grey
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90° to display"
    _picture(size=(30, 60), seed=7).save(dogs / "rotated.jpg", exif=exif)
    (dogs / "nested" / "deeper").mkdir(parents=True)
    _picture(seed=8).save(dogs / "nested" / "deeper" / "inside.jpg")
    (dogs / "linked.jpg").symlink_to(cats / "plain.jpg")
    (dogs / "empty.jpg").write_bytes(b"")
    (dogs / "notes.jpg").write_text("not a picture")
    full = (cats / "plain.jpg").read_bytes()
    (dogs / "cut.jpg").write_bytes(full[: len(full) // 2])
    (dogs / "readme.txt").write_text("ignored: not an image suffix")
    return tmp_path / "zoo"


@pytest.mark.unit
def test_every_kind_of_file_is_decoded_or_skipped_with_a_reason(zoo):
    split = load_folder(zoo, (40, 40), ["cats", "dogs"])
    accepted = split.ids.tolist()
    assert sorted(accepted) == sorted(
        [
            "cats/anim.gif",
            "cats/gray.jpg",
            "cats/lossless.png",
            "cats/modern.webp",
            "cats/old.bmp",
            "cats/plain.jpg",
            "cats/print.jpg",
            "dogs/deep.png",
            "dogs/linked.jpg",
            "dogs/nested/deeper/inside.jpg",
            "dogs/rotated.jpg",
        ]
    )
    reasons = dict(split.skipped)
    assert set(reasons) == {"dogs/empty.jpg", "dogs/notes.jpg", "dogs/cut.jpg"}
    assert reasons["dogs/empty.jpg"] == "empty file" and "not an image" in reasons["dogs/notes.jpg"]
    assert "cannot be decoded" in reasons["dogs/cut.jpg"]
    assert split.images.shape == (11, 40, 40, 3) and split.images.dtype == np.uint8
    at = {image_id: i for i, image_id in enumerate(accepted)}
    assert np.abs(split.images[at["dogs/deep.png"]].astype(int) - 128).max() <= 1  # 16 bits scaled, not clipped
    gray = split.images[at["cats/gray.jpg"]]
    assert np.array_equal(gray[..., 0], gray[..., 1])  # grey becomes three equal channels
    assert np.array_equal(split.images[at["dogs/linked.jpg"]], split.images[at["cats/plain.jpg"]])


@pytest.mark.unit
def test_exif_orientation_is_ignored_as_in_keras(zoo):
    """Keras' loader shows the stored pixels; so does ours (README: Failure behaviour)."""
    stored = np.asarray(Image.open(zoo / "dogs" / "rotated.jpg"))
    assert stored.shape[:2] == (30, 60)
    decoded = images.decode(zoo / "dogs" / "rotated.jpg", (30, 60))
    assert np.abs(decoded.astype(int) - stored.astype(int)).mean() < 3  # decoders differ by a unit or two


@pytest.mark.unit
def test_huge_images_are_refused_before_decoding(zoo, monkeypatch):
    monkeypatch.setattr(images, "MAX_PIXELS", 48 * 64 - 1)
    with pytest.raises(images.BadImage, match="pixel limit"):
        images.decode(zoo / "cats" / "plain.jpg", (40, 40))


@pytest.mark.unit
def test_folder_problems(zoo, tmp_path, caplog):
    (zoo / "birds").mkdir()
    _picture().save(zoo / "birds" / "tweet.jpg")
    split = load_folder(zoo, (16, 16), ["cats", "dogs"])
    assert "birds" in caplog.text and not any(i.startswith("birds/") for i in split.ids)
    with pytest.raises(CatdogError, match="no kittens/ folder"):
        load_folder(zoo, (16, 16), ["kittens", "dogs"])
    (tmp_path / "only" / "cats").mkdir(parents=True)
    (tmp_path / "only" / "dogs").mkdir()
    _picture().save(tmp_path / "only" / "cats" / "a.jpg")
    with pytest.raises(CatdogError, match="dogs/ holds no usable images"):
        load_folder(tmp_path / "only", (16, 16), ["cats", "dogs"])
    assert len(load_folder(tmp_path / "only", (16, 16), ["cats", "dogs"], require_every_class=False)) == 1


def test_a_training_run_says_which_files_it_skipped(small_data, make_cfg, tmp_path):
    import shutil

    data = tmp_path / "data"
    shutil.copytree(small_data, data)
    (data / "train" / "cats" / "broken.jpg").write_text("oops")
    (data / "validation" / "dogs" / "empty.jpg").write_bytes(b"")
    cfg = make_cfg("cnn", store_overrides(tmp_path), f"data.dir={data}", "train.log_model=false")
    run = mlflow.get_run(training.train(cfg).run_id)
    assert run.data.metrics["skipped_images"] == 2 and run.data.params["n_train_cats"] == "24"
    listed = json.loads(mlflow.artifacts.load_text(f"runs:/{run.info.run_id}/data/skipped_images.json"))
    assert {item["file"] for item in listed} == {"train/cats/broken.jpg", "validation/dogs/empty.jpg"}
