"""Loading, splitting and batching images: generated folders and real archive images."""

import shutil
import zipfile

import numpy as np
import pytest

from catdog import CatdogError
from catdog.data import load_folder, load_study_data, split_off_test, to_dataset
from helpers import compose, write_images

pytestmark = pytest.mark.unit


def test_load_folder_decodes_generated_images(tmp_path):
    folder = write_images(tmp_path / "imgs", {"cats": 5, "dogs": 3})
    split = load_folder(folder, (32, 32), ["cats", "dogs"])
    assert split.images.shape == (8, 32, 32, 3) and split.images.dtype == np.uint8
    assert split.labels.tolist() == [0] * 5 + [1] * 3
    assert split.counts(["cats", "dogs"]) == {"cats": 5, "dogs": 3}
    # The generator saturates the red channel of cats and the green one of dogs.
    channel_means = lambda i: split.images[i].reshape(-1, 3).mean(axis=0)
    assert channel_means(0).argmax() == 0 and channel_means(-1).argmax() == 1


def test_bad_folders_fail_with_one_line(tmp_path):
    with pytest.raises(CatdogError, match="no dogs/ folder"):
        load_folder(write_images(tmp_path / "a", {"cats": 2}), (32, 32), ["cats", "dogs"])
    (tmp_path / "b" / "cats").mkdir(parents=True)
    (tmp_path / "b" / "dogs").mkdir()
    with pytest.raises(CatdogError, match="holds no usable images"):
        load_folder(tmp_path / "b", (32, 32), ["cats", "dogs"])
    with pytest.raises(CatdogError, match="no such file"):
        load_study_data(compose(f"data.url=file://{tmp_path}/missing.zip").data)
    with pytest.raises(CatdogError, match="not a folder"):
        load_study_data(compose(f"data.dir={tmp_path}/nowhere").data)


def test_split_is_stratified_disjoint_and_fixed(tmp_path):
    split = load_folder(write_images(tmp_path / "v", {"cats": 20, "dogs": 10}), (16, 16), ["cats", "dogs"])
    split.images[:] = np.arange(len(split))[:, None, None, None]  # tag each image by index
    rest, test = split_off_test(split, 0.2, seed=7)
    assert test.counts(["cats", "dogs"]) == {"cats": 4, "dogs": 2}
    ids = lambda s: set(s.images[:, 0, 0, 0].tolist())
    assert ids(rest).isdisjoint(ids(test)) and len(ids(rest) | ids(test)) == 30
    assert ids(split_off_test(split, 0.2, seed=7)[1]) == ids(test)
    assert ids(split_off_test(split, 0.2, seed=8)[1]) != ids(test)


def test_real_images_from_a_folder(small_data):
    data = load_study_data(compose(f"data.dir={small_data}").data)
    assert data.image_size == (160, 160)
    assert data.summary() == {
        "n_train_cats": 24,
        "n_train_dogs": 24,
        "n_val_cats": 16,
        "n_val_dogs": 16,
        "n_test_cats": 4,
        "n_test_dogs": 4,
    }
    assert data.baseline_accuracy == 0.5
    assert data.data_hash == load_study_data(compose(f"data.dir={small_data}").data).data_hash
    assert data.data_hash != load_study_data(compose(f"data.dir={small_data}", "data.split_seed=1").data).data_hash


def test_real_images_from_a_file_url(small_data, tmp_path):
    archive = shutil.make_archive(str(tmp_path / "subset"), "zip", small_data.parent)
    cfg = compose(f"data.url=file://{archive}", f"data.cache_dir={tmp_path / 'cache'}")
    data = load_study_data(cfg.data)
    assert len(data.train) == 48 and len(data.val) + len(data.test) == 40
    assert zipfile.is_zipfile(tmp_path / "cache" / "datasets" / "subset.zip")


def test_baseline_comes_from_the_labels(tmp_path):
    root = tmp_path / "unbalanced"
    write_images(root / "train", {"cats": 6, "dogs": 2})
    write_images(root / "validation", {"cats": 10, "dogs": 30}, seed=1)
    data = load_study_data(compose(f"data.dir={root}", "data.image_size=[16,16]").data)
    assert data.majority_class == 0  # cats dominate training
    assert data.baseline_accuracy == pytest.approx(2 / 8)  # test: 2 cats, 6 dogs


def test_dataset_batches_float_images_and_reshuffles(tmp_path):
    split = load_folder(write_images(tmp_path / "d", {"cats": 7, "dogs": 7}), (8, 8), ["cats", "dogs"])
    ds = to_dataset(split, batch_size=4, shuffle_seed=3)
    batches = list(ds.as_numpy_iterator())
    assert [len(y) for _, y in batches] == [4, 4, 4, 2]
    assert batches[0][0].dtype == np.float32
    epoch1 = np.concatenate([y for _, y in batches])
    epoch2 = np.concatenate([y for _, y in ds.as_numpy_iterator()])
    assert sorted(epoch1) == sorted(split.labels) and not np.array_equal(epoch1, epoch2)
    ordered = np.concatenate([y for _, y in to_dataset(split, 4).as_numpy_iterator()])
    assert np.array_equal(ordered, split.labels)
