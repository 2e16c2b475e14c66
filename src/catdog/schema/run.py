"""The schemas of a run's config groups: model, train, data, features, tracking, paths and
study. Hydra rejects unknown keys and wrongly typed values with them; each `__post_init__`
refuses values out of range."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from omegaconf import MISSING

from catdog import CatdogError

POOLINGS = ("flatten", "avg")
PRECISIONS = ("float32", "mixed_bfloat16")


def _least(name: str, value, least) -> None:
    if value < least:
        raise CatdogError(f"{name} must be >= {least}, got {value}")


def _one_of(name: str, value, choices) -> None:
    if value not in choices:
        raise CatdogError(f"{name} must be one of {', '.join(choices)}, got {value!r}")


@dataclass
class BackboneConfig:
    """The pretrained backbone under a head: the function that builds it (`_target_`, see
    catdog/models/backbones.py), its weights, what a second stage unfreezes."""

    _target_: str = "catdog.models.backbones.mobilenet_v2"
    name: str = "mobilenet_v2"  # what pages call it
    weights: str | None = "imagenet"  # "imagenet" downloads Keras' weights; or a local .h5 file
    trainable: bool = False
    fine_tune_at: int | None = None  # the first layer a second stage unfreezes; None: no second stage


@dataclass
class ModelConfig:
    """A model variant (conf/model/): scaling, augmentation, the CNN body or a backbone, the head."""

    name: str = MISSING  # the variant's name in runs, reports and `catdog promote --variant`
    preprocess: bool = False  # scale pixels to [-1, 1] as MobileNetV2's preprocess_input does
    flip_mode: str | None = None  # RandomFlip mode, e.g. horizontal_and_vertical; None: no flip
    rotation_factor: float | None = None  # RandomRotation factor (a fraction of 2 pi); None or 0: no rotation
    fill_mode: str = "nearest"  # how RandomRotation fills the corners it uncovers
    conv_filters: list[int] = field(default_factory=lambda: [32, 32, 64])  # the CNN's conv blocks
    dropout: float = 0.2
    dense_units: int = 64  # the dense layer before the logits; 0 (backbones only): a linear head
    pooling: str | None = None  # backbones: flatten (the reference's head) or avg (the tutorial's)
    backbone: BackboneConfig | None = None  # None: the CNN on pixels

    def __post_init__(self):
        if not 0.0 <= self.dropout < 1.0:
            raise CatdogError(f"model.dropout must be in [0, 1), got {self.dropout}")
        # A head may be linear (0 units); a CNN needs its dense layer.
        _least("model.dense_units", self.dense_units, 0 if self.backbone else 1)
        if self.rotation_factor is not None:
            _least("model.rotation_factor", self.rotation_factor, 0)
        if self.backbone is None:
            return
        _one_of("model.pooling", self.pooling, POOLINGS)
        _check_backbone(self.backbone._target_)
        weights = self.backbone.weights
        if weights not in (None, "imagenet") and not Path(weights).is_file():
            raise CatdogError(f"model.backbone.weights {weights}: no such file (use 'imagenet' or a .h5 path)")


def _check_backbone(target: str) -> None:
    from hydra.utils import get_method

    try:
        get_method(target)
    except (ImportError, ValueError, AttributeError) as exc:
        raise CatdogError(f"model.backbone._target_ {target!r}: no such function to import") from exc


@dataclass
class FineTuneConfig:
    """The second stage of a fine-tuned variant: its epochs and learning rate."""

    epochs: int = 10
    learning_rate: float | None = None  # None: train.learning_rate / 10


@dataclass
class TrainConfig:
    """How a run fits: epochs, optimizer, learning rate, early stopping, precision, logging."""

    epochs: int = 20
    optimizer: str = "adam"  # any keras.optimizers name
    learning_rate: float = 0.001
    early_stopping_patience: int | None = None  # stop when val_accuracy has not improved for this many epochs
    precision: str = "float32"  # or mixed_bfloat16: faster plain CNNs on some CPUs with AVX512-BF16 (docs)
    verbose: int = 2  # Keras fit verbosity: 2 prints one line per epoch
    log_model: bool = True  # log the trained model in MLflow's Keras flavor
    fine_tune: FineTuneConfig = field(default_factory=FineTuneConfig)  # variants with backbone.fine_tune_at

    def __post_init__(self):
        _least("train.epochs", self.epochs, 1)
        _least("train.fine_tune.epochs", self.fine_tune.epochs, 1)
        for name, rate in (
            ("learning_rate", self.learning_rate),
            ("fine_tune.learning_rate", self.fine_tune.learning_rate),
        ):
            if rate is not None and rate <= 0:
                raise CatdogError(f"train.{name} must be > 0, got {rate}")
        _one_of("train.precision", self.precision, PRECISIONS)


@dataclass
class DataConfig:
    """Where the images come from, their size and batches, and the validation/test split."""

    url: str = MISSING  # http(s):// or file://, downloaded once into the Keras cache
    dir: str | None = None  # an extracted folder (train/, validation/): wins over url
    cache_dir: str | None = None  # None: Keras' own cache (~/.keras/datasets)
    download_timeout: float = 60  # seconds without an answer before a download is given up
    image_size: list[int] = field(default_factory=lambda: [160, 160])
    batch_size: int = 32
    class_names: list[str] = field(default_factory=lambda: ["cats", "dogs"])
    # The validation folder is split into validation and test at image level, per class,
    # with a fixed seed: the same test images for every variant, seed and run.
    test_fraction: float = 0.2
    split_seed: int = 1337


@dataclass
class FeaturesConfig:
    """The cache of backbone features that frozen backbones train their heads on."""

    enabled: bool = True  # False: the whole image model trains, as the reference did
    train_views: int = 1  # augmented views per training image; 1 chosen by validation over 1, 3 and 6 (docs)
    seed: int = 0  # seeds the augmented views (not the run), so runs and trials share them
    batch_size: int = 64  # images augmented together: augmentation draws once per batch
    cache_dir: str = MISSING

    def __post_init__(self):
        _least("features.train_views", self.train_views, 1)
        _least("features.batch_size", self.batch_size, 1)


@dataclass
class TrackingConfig:
    """The MLflow store every run logs to, and the experiment."""

    uri: str = MISSING
    experiment: str = MISSING
    artifact_root: str = MISSING


@dataclass
class PathsConfig:
    """Where the project keeps its store, caches, review pages and test-split ledger."""

    root_dir: str = MISSING
    mlruns_dir: str = MISSING
    reports_dir: str = MISSING
    ledger: str = MISSING  # the test split's ledger, kept with the published pages


@dataclass
class StudyConfig:
    """Long studies: skipping finished runs, rerunning, the review page rewritten as they go."""

    skip_finished: bool = False  # a job matching a FINISHED run (config, data, code) is skipped
    rerun: bool = False  # run anyway
    live_report: bool = False  # in a multirun, the review page rewritten after every finished job
