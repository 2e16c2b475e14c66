"""Data: the image folders or archive (`fetch`), decoded once into train, validation and
test splits (`decode`, one file at a time by `images`), and fed to Keras (`pipeline`)."""

from catdog.data.decode import Split, StudyData, load_folder, load_study_data, split_off_test
from catdog.data.fetch import resolve_root
from catdog.data.pipeline import batches, no_autotune, to_dataset

__all__ = [
    "Split",
    "StudyData",
    "batches",
    "load_folder",
    "load_study_data",
    "no_autotune",
    "resolve_root",
    "split_off_test",
    "to_dataset",
]
