"""Every variant composes with hydra.compose and builds the reference's architecture."""

import dataclasses
import typing

import pytest
from omegaconf import OmegaConf

from catdog import CONFIG_DIR, PROJECT_ROOT, CatdogError, schema
from catdog.models.variants import build_model
from helpers import compose

# Trainable / non-trainable parameter counts of the reference models at 160x160.
EXPECTED = {
    "cnn": (1_355_938, 0),
    "augmented": (1_355_938, 0),
    "preprocessed": (1_355_938, 0),
    "transfer": (2_048_194, 2_257_984),
}


def _counts(model):
    trainable = sum(int(w.numpy().size) for w in model.trainable_weights)
    frozen = sum(int(w.numpy().size) for w in model.non_trainable_weights)
    return trainable, frozen


@pytest.mark.unit
@pytest.mark.parametrize("variant", sorted(EXPECTED))
def test_variant_builds_reference_architecture(variant, weights):
    cfg = compose(f"model={variant}", f"model.backbone.weights={weights}" if variant == "transfer" else "seed=0")
    assert cfg.model.name == variant
    model = build_model(cfg.model, cfg.data.image_size)
    assert _counts(model) == EXPECTED[variant]
    assert model.output_shape == (None, 2)


@pytest.mark.unit
def test_variant_settings_match_reference():
    models = {v: compose(f"model={v}").model for v in EXPECTED}
    assert models["cnn"].rotation_factor is None and models["cnn"].flip_mode is None
    assert models["augmented"].rotation_factor == 0.5 and not models["augmented"].preprocess
    assert models["preprocessed"].rotation_factor == 0.2 and models["preprocessed"].preprocess
    assert models["transfer"].backbone.trainable is False
    assert all(m.dropout == 0.2 and m.dense_units == 64 for m in models.values())


@pytest.mark.unit
def test_overrides_reach_the_model():
    cfg = compose("model=augmented", "model.dropout=0.35", "model.dense_units=128", "model.rotation_factor=0.1")
    model = build_model(cfg.model, cfg.data.image_size)
    assert model.get_layer("random_rotation").factor == (-0.1, 0.1)
    assert [layer.rate for layer in model.layers if layer.__class__.__name__ == "Dropout"] == [0.35, 0.35]
    assert model.layers[-2].units == 128


@pytest.mark.unit
def test_tracking_store_is_anchored_at_the_project_root(monkeypatch, tmp_path):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("MLFLOW_EXPERIMENT_NAME", raising=False)
    monkeypatch.chdir(tmp_path)
    cfg = compose()
    assert cfg.tracking.uri == f"sqlite:///{PROJECT_ROOT}/mlruns/mlflow.db"
    assert cfg.tracking.artifact_root == f"{PROJECT_ROOT}/mlruns/artifacts"
    assert cfg.tracking.experiment == "catdog-study"


@pytest.mark.unit
def test_mlflow_environment_overrides_tracking(monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:5000")
    monkeypatch.setenv("MLFLOW_EXPERIMENT_NAME", "team-review")
    cfg = compose()
    assert (cfg.tracking.uri, cfg.tracking.experiment) == ("http://127.0.0.1:5000", "team-review")


@pytest.mark.unit
def test_public_sources_stay_the_defaults(monkeypatch):
    monkeypatch.delenv("CATDOG_DATA_URL", raising=False)
    monkeypatch.delenv("CATDOG_BACKBONE_WEIGHTS", raising=False)
    cfg = compose("model=transfer")
    assert cfg.data.url == "https://storage.googleapis.com/mledu-datasets/cats_and_dogs_filtered.zip"
    assert cfg.model.backbone.weights == "imagenet"


@pytest.mark.unit
def test_experiment_preset_is_global():
    cfg = compose("experiment=reference", "model=transfer")
    assert cfg.tracking.experiment == "reference-study"
    assert cfg.train.epochs == 20
    OmegaConf.resolve(cfg)


PRESETS = sorted(p.stem for p in (PROJECT_ROOT / "conf" / "experiment").glob("*.yaml"))


@pytest.mark.parametrize("preset", PRESETS)
def test_every_experiment_preset_composes_and_runs(preset, make_cfg, store):
    """Each preset trains for real (one epoch on the small subset) into its own experiment."""
    from mlflow.tracking import MlflowClient

    from catdog import training

    preset_cfg = compose(f"experiment={preset}")
    # The preset's own model (make_cfg's `model=` would override the preset's choice).
    defaults = OmegaConf.load(PROJECT_ROOT / "conf" / "experiment" / f"{preset}.yaml").get("defaults", [])
    variant = next((d["override /model"] for d in defaults if "override /model" in d), "cnn")
    cfg = make_cfg(variant, store, f"experiment={preset}", "train.log_model=false", "train.fine_tune.epochs=1")
    assert cfg.model.name == preset_cfg.model.name
    assert cfg.tracking.experiment == preset_cfg.tracking.experiment
    run_id = training.train(cfg).run_id
    run = MlflowClient().get_run(run_id)
    assert run.info.status == "FINISHED"
    assert MlflowClient().get_experiment(run.info.experiment_id).name == preset_cfg.tracking.experiment


@pytest.mark.unit
def test_tracking_uris_are_logged_without_passwords():
    from catdog.tracking import redact

    assert redact("http://ana:s3cret@tracking.example:5000/x") == "http://ana:***@tracking.example:5000/x"
    assert redact("sqlite:////tmp/mlflow.db") == "sqlite:////tmp/mlflow.db"


@pytest.mark.unit
@pytest.mark.parametrize("tuner", ["random", "bayesian", "hyperband"])
def test_every_tuner_option_names_its_keras_tuner_class(tuner):
    import hydra
    import keras_tuner as kt

    cfg = compose(f"tuner={tuner}", config="tune")
    assert issubclass(hydra.utils.get_class(cfg.tuner._target_), kt.Tuner)
    assert cfg.tuner.name == tuner and set(cfg.tuner) == set(compose(config="tune").tuner)


@pytest.mark.unit
@pytest.mark.parametrize(
    "override, message",
    [
        ("tuner.options.max_epochs=x", r"tuner.options.max_epochs must be of type int \(default 100\), got 'x'"),
        ("+tuner.options.max_trials=3", "tuner.options.max_trials: catdog-tune sets it"),
        ("+tuner.options.colour=red", "tuner.options.colour: Hyperband takes no such argument"),
        ("tuner._target_=keras_tuner.Nope", "tuner._target_ 'keras_tuner.Nope': no such class to import"),
        ("tuner._target_=keras.Model", "tuner._target_ 'keras.Model' is not a Keras Tuner tuner class"),
    ],
)
def test_a_tuners_class_and_options_are_checked_before_a_search(override, message):
    from catdog import schema

    with pytest.raises(CatdogError, match=message):
        schema.validate(compose("tuner=hyperband", override, config="tune"))


@pytest.mark.unit
def test_the_schemas_refuse_wrong_types_and_values_out_of_range():
    from hydra.errors import ConfigCompositionException

    from catdog import schema

    with pytest.raises(ConfigCompositionException) as typed:
        compose("train.epochs=many")
    assert "could not be converted to Integer" in str(typed.value.__cause__)
    with pytest.raises(ConfigCompositionException):
        compose("model=transfer", "model.backbone.depth=3")
    with pytest.raises(CatdogError, match=r"search.dropout: min \(0.6\) must not exceed max \(0.5\)"):
        schema.validate(compose("search.dropout.min=0.6", config="tune"))
    schema.validate(compose("model=finetuned", config="tune"))


@pytest.mark.unit
def test_the_fit_plan_is_decided_by_the_config():
    from catdog.training.plan import FitPlan, fit_plan

    assert fit_plan(compose("model=cnn")) == FitPlan("images", None, pooled=False)
    assert fit_plan(compose("model=transfer")) == FitPlan("features", None, pooled=False)
    assert fit_plan(compose("experiment=best")) == FitPlan("features", None, pooled=True)
    assert fit_plan(compose("model=finetuned")) == FitPlan("activations", 100, pooled=False)
    assert fit_plan(compose("model=finetuned", "features.enabled=false")) == FitPlan("images", 100, pooled=False)
    assert fit_plan(compose("model=transfer", "model.backbone.trainable=true")).inputs == "images"


def _defaults(cls) -> dict:
    """A schema dataclass's defaults, nested dataclasses as dicts."""
    out = {}
    for f in dataclasses.fields(cls):
        value = f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default
        out[f.name] = dataclasses.asdict(value) if dataclasses.is_dataclass(value) else value
    return out


def _nested(cls, name: str):
    hint = typing.get_type_hints(cls).get(name)
    return next((t for t in (typing.get_args(hint) or (hint,)) if dataclasses.is_dataclass(t)), None)


@pytest.mark.parametrize("group", sorted(schema.SCHEMAS))
def test_no_config_file_repeats_a_default(group):
    """The schema dataclasses hold the defaults; a YAML file says only what it changes (of
    the schema's defaults, or of the option it builds on), so the two can never drift."""
    cls = schema.SCHEMAS[group]
    repeated = []
    for path in sorted((CONFIG_DIR / group).glob("*.yaml")):
        raw = OmegaConf.to_container(OmegaConf.load(path), resolve=False)
        base = _defaults(cls)
        for parent in [d for d in raw.get("defaults", []) if isinstance(d, str) and d not in ("_self_",)]:
            if not parent.startswith("/"):
                base |= OmegaConf.to_container(OmegaConf.load(CONFIG_DIR / group / f"{parent}.yaml"), resolve=False)
        for key, value in raw.items():
            nested = _nested(cls, key)
            if isinstance(value, dict) and nested is not None:
                inner = _defaults(nested) | (base.get(key) or {})
                repeated += [f"{key}.{k}" for k, v in value.items() if k in inner and inner[k] == v]
            elif key != "defaults" and key in base and base[key] == value:
                repeated.append(key)
        assert not repeated, f"{path.relative_to(CONFIG_DIR)} repeats its default: {', '.join(repeated)}"


def test_a_backbone_is_added_by_a_function_and_a_config(weights, small_data):
    """`model.backbone._target_` names the function that builds it; the feature cache is
    keyed on it, so two backbones never share cached features."""
    from catdog.data import load_study_data
    from catdog.models.variants import build_backbone
    from catdog.training import features

    shipped = compose("model=transfer", f"model.backbone.weights={weights}", f"data.dir={small_data}")
    tiny = compose(
        "model=transfer", f"model.backbone.weights={weights}", f"data.dir={small_data}",
        "model.backbone._target_=helpers.tiny_backbone", "model.backbone.name=tiny",
    )  # fmt: skip
    schema.validate(tiny)
    assert build_backbone(tiny.model.backbone, (64, 64)).get_layer("tiny_conv").filters == 8
    data = load_study_data(shipped.data)
    assert (
        features.FeatureCache(data, tiny).base_key["backbone"]
        != features.FeatureCache(data, shipped).base_key["backbone"]
    )
    with pytest.raises(CatdogError, match="model.backbone._target_ 'helpers.nope': no such function"):
        schema.validate(
            compose("model=transfer", f"model.backbone.weights={weights}", "model.backbone._target_=helpers.nope")
        )
