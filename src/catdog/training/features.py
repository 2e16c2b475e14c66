"""Cached backbone features for frozen-backbone variants.

With a frozen backbone nearly all the time of a run goes to its forward pass, so each
distinct image view is pushed through it once, kept on disk, and every later epoch, run or
trial trains only the small head on the stored features. A variant that fine-tunes the
backbone's top (`model.backbone.fine_tune_at`) caches the activations of the frozen bottom
instead (see backbone_cut.py) and trains the top and head from them.
"""

from __future__ import annotations

import gc
import hashlib
import json
import logging
import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from catdog.data import StudyData, no_autotune
from catdog.models import augmentation, backbone_cut
from catdog.models.variants import augmentation_layers, build_backbone, scaling_layers
from catdog.schema import RunConfig
from catdog.training.plan import FitPlan, fit_plan

log = logging.getLogger(__name__)

# Images per backbone call. At 320 px a run peaked at 4.36 GB with the whole batch of 64 in
# one call and at 3.13 GB in 16s, with the same features (bit for bit on that machine's
# CPU; an AVX2-only one differs in the last float16 bit for some values) and no slower.
BACKBONE_CHUNK = 16


@dataclass(frozen=True)
class CachedFeatures:
    """What a run on cached inputs trains and is scored on: the frozen backbone's features
    (or, for a fine-tuned variant, the activations of its frozen bottom), float16."""

    train: object  # a tf.Tensor (views, n, ...): `train_views` augmented views of each training image
    val: np.ndarray  # (n, ...): one un-augmented view per image
    test: np.ndarray

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.val.shape[1:])


def _weights_id(weights) -> str:
    if weights == "imagenet":
        return weights
    return hashlib.sha256(Path(weights).read_bytes()).hexdigest()


def _key(parts: dict) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:20]


class FeatureCache:
    """Disk cache of backbone features keyed by everything that changes them. Features are
    float16 (half the memory; the head's accuracy does not notice); the latest training
    views stay in memory so consecutive trials with the same augmentation share them."""

    def __init__(self, data: StudyData, cfg: RunConfig, plan: FitPlan | None = None):
        """CFG: a run's config; `cfg.model` names the backbone, `cfg.features` the cache;
        PLAN: how CFG's run fits (`fit_plan(cfg)` when not given)."""
        model_cfg = cfg.model
        self.data = data
        self.model_cfg = model_cfg
        self.cfg = cfg.features
        self.dir = Path(self.cfg.cache_dir)
        self.base_key = {
            "format": 2,  # bump when the way views are computed changes
            "data": data.data_hash,
            "image_size": list(data.image_size),
            "backbone": model_cfg.backbone._target_,
            "weights": _weights_id(model_cfg.backbone.weights),
            "preprocess": bool(model_cfg.preprocess),
        }
        self.plan = plan or fit_plan(cfg)
        # A frozen backbone under an average-pooling head: the pooled features are all the
        # head sees, 49x smaller than the feature map at 224 px.
        if self.plan.pooled:
            self.base_key["pooled"] = True
        if self.plan.fine_tune_at is not None:
            self.base_key["fine_tune_at"] = self.plan.fine_tune_at
            self.base_key["cut"] = "narrow"  # how backbone_cut.boundary picks the cut layer
        self._backbone = None
        self._eval = None
        self._train = (None, None)
        self.computed = 0  # images pushed through the backbone so far (0: all from disk)

    def serves(self, plan: FitPlan) -> bool:
        """Whether a run fitting by PLAN trains on these features (a trial may pool or cut
        otherwise)."""
        return plan == self.plan

    def _extractor(self):
        """The frozen backbone, or its bottom below the fine-tuning cut."""
        if self._backbone is None:
            self._backbone = build_backbone(
                self.model_cfg.backbone, self.data.image_size, pooling="avg" if self.plan.pooled else None
            )
            cut = self.plan.fine_tune_at
            if cut is not None:
                self._backbone = backbone_cut.bottom_model(self._backbone, backbone_cut.boundary(self._backbone, cut))
        return self._backbone

    def _load_or_build(self, key: dict, build) -> np.ndarray:
        path = self.dir / f"{_key(key)}.npy"
        if path.exists():
            try:
                return np.load(path)
            except (ValueError, OSError, EOFError) as exc:  # truncated or corrupt: never train on it
                log.warning("Feature cache %s is unreadable (%s); rebuilding it", path.name, exc)
                path.unlink(missing_ok=True)
        start = time.perf_counter()
        array, computed = build()
        self.computed += computed
        self.dir.mkdir(parents=True, exist_ok=True)
        # A temporary name of its own: two jobs building the same entry never share one.
        with tempfile.NamedTemporaryFile(dir=self.dir, prefix=path.stem, suffix=".tmp", delete=False) as tmp:
            np.save(tmp, array)
        os.replace(tmp.name, path)  # atomic: a parallel job never reads half a file
        log.info(
            "Cached %s features of %d image views in %.0fs: %s",
            key["split"],
            computed,
            time.perf_counter() - start,
            path.name,
        )
        return array

    def _forward(self, images: np.ndarray, layers_: list, training: bool, out: np.ndarray | None = None) -> np.ndarray:
        """Backbone outputs of IMAGES after LAYERS_, written into OUT (allocated if None)."""
        import tensorflow as tf

        backbone = self._extractor()

        @tf.function
        def prepare(x):
            for layer in layers_:
                x = layer(x, training=training)
            return x

        @tf.function(reduce_retracing=True)
        def embed(x):
            return backbone(x, training=False)

        for start in range(0, len(images), self.cfg.batch_size):
            # Augmentation draws once per batch of `batch_size`; the backbone, whose
            # activations grow with batch x pixels, sees smaller chunks of it. The chunk
            # decides peak memory; the outputs only in their last bits, on CPUs whose
            # kernels change with the batch size.
            batch = prepare(tf.constant(images[start : start + self.cfg.batch_size], tf.float32))
            for at in range(0, len(batch), BACKBONE_CHUNK):
                chunk = embed(batch[at : at + BACKBONE_CHUNK]).numpy()
                if out is None:
                    out = np.empty((len(images), *chunk.shape[1:]), np.float16)
                out[start + at : start + at + len(chunk)] = chunk
        return out

    def eval_features(self) -> tuple[np.ndarray, np.ndarray]:
        """Validation and test features: one un-augmented view each."""
        if self._eval is None:
            n_val = len(self.data.val)

            def build():
                images = np.concatenate([self.data.val.images, self.data.test.images])
                return self._forward(images, scaling_layers(self.model_cfg), training=False), len(images)

            both = self._load_or_build({**self.base_key, "split": "val+test"}, build)
            self._eval = (both[:n_val], both[n_val:])
        return self._eval

    def features(self, cfg: RunConfig) -> CachedFeatures:
        """Every feature set a run of CFG trains and validates on, loaded or built."""
        val, test = self.eval_features()
        return CachedFeatures(self.train_features(cfg), val, test)

    def train_features(self, cfg: RunConfig):
        """`train_views` augmented views of every training image for `cfg.model`'s
        augmentation (a trial's may differ from the search's), as one float16 tensor
        (views, n, ...). The latest set stays in memory as a tensor, so trials with the same
        augmentation share it without another copy."""
        model_cfg = cfg.model
        # Own seeds: building views must not move the run's global random state, or a run
        # would train differently depending on whether the cache was warm.
        augment = augmentation_layers(model_cfg, seed=self.cfg.seed)
        views = self.cfg.train_views if augment else 1
        key = {**self.base_key, "split": "train", "views": views}
        if augment:  # without augmentation the one view is the image, whatever these say
            key |= {
                "view_seed": self.cfg.seed,
                "view_batch": self.cfg.batch_size,  # augmentation draws once per batch
                **augmentation.key(model_cfg),
            }

        def build():
            layers_ = scaling_layers(model_cfg) + augment
            images = self.data.train.images
            first = self._forward(images, layers_, training=True)
            stacked = np.empty((views, *first.shape), np.float16)
            stacked[0] = first
            del first
            for view in range(1, views):
                self._forward(images, layers_, training=True, out=stacked[view])
            return stacked, views * len(images)

        if self._train[0] != key:
            import tensorflow as tf

            # Free the previous views before loading the next: datasets and traced functions
            # of earlier trials hold them in reference cycles that only the collector breaks.
            self._train = (None, None)
            gc.collect()
            self._train = (key, tf.constant(self._load_or_build(key, build)))
        return self._train[1]


def cache_for(cache: FeatureCache | None, data: StudyData, cfg: RunConfig, plan: FitPlan) -> FeatureCache | None:
    """The cache a run of CFG, fitting by PLAN, trains from: CACHE when it serves that plan
    (a trial or a retrain may pool or fine-tune otherwise than the search's config), else a
    new one; None when the run trains on images."""
    if not plan.cached:
        return None
    if cache is not None and cache.serves(plan):
        return cache
    return FeatureCache(data, cfg, plan)


def view_dataset(views: np.ndarray, labels: np.ndarray, batch_size: int, seed: int):
    """Training batches from cached views: each epoch shuffles the images and draws one of
    the stored augmented views of each, as on-the-fly augmentation would. All in tf.data
    (no Python per batch: ~1.6x faster epochs than a keras.utils.PyDataset here)."""
    import tensorflow as tf

    n_views, n = views.shape[:2]
    views_t, labels_t = tf.convert_to_tensor(views), tf.constant(labels)

    def gather(rows):
        choice = tf.random.uniform(tf.shape(rows), maxval=n_views, dtype=tf.int64, seed=seed)
        picked = tf.gather_nd(views_t, tf.stack([choice, rows], axis=1))
        return tf.cast(picked, tf.float32), tf.gather(labels_t, rows)

    ds = tf.data.Dataset.range(n).shuffle(n, seed=seed, reshuffle_each_iteration=True)
    return no_autotune(ds.batch(batch_size).map(gather).prefetch(1))
