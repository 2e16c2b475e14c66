"""TensorFlow's oneDNN kernels and other process-level levers, phase by phase, on this machine.

Every arm is a fresh process (TensorFlow reads these settings once, when it is imported),
and the arms take turns round by round, in reverse order every other round: these machines
are noisy, so compare within a run, never across runs. Each process measures four phases
(the plain CNN and fine-tuning after a warm-up that traces them; the feature pass and the
head fit cold, tracing included, as a run meets them):
- plain CNN: `preprocessed` (Model 3) training steps and a validation pass on real images,
  given as the seconds of a whole epoch (2,000 training + 800 validation images);
- feature pass: MobileNetV2 at 160 px filling an empty feature cache (validation and test
  images, and one augmented view of every training image: 3,000 images);
- head fit: `transfer`'s head on those cached features, seconds per epoch of a 3-epoch fit;
- fine-tuning: `finetuned`'s second stage (the backbone's top from layer 100, unfrozen, and
  the head, on cached activations), seconds per epoch from STEPS training steps and a
  validation pass over 160 images.
Arms: oneDNN off (Eigen kernels: TensorFlow's default on AVX2-only CPUs) and on; then, with
oneDNN on, the levers that cost nothing to try: 1 inter-op thread, TensorFlow's BFC
allocator on the CPU, and each other malloc found installed (jemalloc, tcmalloc) through
LD_PRELOAD; and both kernels with 1 intra-op thread (what a parallel launcher's job gets).

`--isa avx2` caps oneDNN at AVX2 in every arm (ONEDNN_MAX_CPU_ISA), which makes an AVX-512
machine stand in for an AVX2-only one: TensorFlow's Eigen kernels are compiled for AVX
whatever the CPU, and oneDNN picks its kernels by the ISA it is allowed.
`--commands` times whole commands instead, oneDNN off against on: one `preprocessed` run
of 3 epochs, and with `--long` the 20-trial `transfer` search and a whole `finetuned` run.
Usage: python bench/onednn.py [--rounds 2] [--steps 20] [--isa native|avx2] [--commands [--long]]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

MALLOCS = {
    "jemalloc": ("libjemalloc.so.2", "libjemalloc.so"),
    "tcmalloc": ("libtcmalloc_minimal.so.4", "libtcmalloc.so.4"),
}
PHASES = ("plain CNN epoch", "feature pass (3,000 images)", "head fit epoch", "fine-tuning epoch")


def installed_mallocs() -> dict[str, str]:
    """Each other malloc whose shared library the dynamic loader knows."""
    known = subprocess.run(["ldconfig", "-p"], capture_output=True, text=True).stdout
    found = {}
    for name, libraries in MALLOCS.items():
        for line in known.splitlines():
            if any(line.strip().startswith(lib + " ") for lib in libraries):
                found[name] = line.split("=>")[-1].strip()
                break
    return found


def arms() -> dict[str, dict[str, str]]:
    on = {"TF_ENABLE_ONEDNN_OPTS": "1"}
    out = {
        "oneDNN off (Eigen)": {"TF_ENABLE_ONEDNN_OPTS": "0"},
        "oneDNN on": on,
        "oneDNN on, 1 inter-op thread": {**on, "TF_NUM_INTEROP_THREADS": "1"},
        "oneDNN on, BFC allocator": {**on, "TF_CPU_ALLOCATOR_USE_BFC": "1"},
    }
    for name, library in installed_mallocs().items():
        out[f"oneDNN on, {name}"] = {**on, "LD_PRELOAD": library}
    out["oneDNN off, 1 thread"] = {"TF_ENABLE_ONEDNN_OPTS": "0", "TF_NUM_INTRAOP_THREADS": "1"}
    out["oneDNN on, 1 thread"] = {**on, "TF_NUM_INTRAOP_THREADS": "1"}
    return out


def timed(work) -> float:
    started = time.perf_counter()
    work()
    return time.perf_counter() - started


def plain_cnn(load, data, steps: int) -> float:
    from catdog.data import to_dataset
    from catdog.models.variants import build_model
    from catdog.training import seeding
    from catdog.training.fitting import compile_model

    cfg = load(["model=preprocessed"])
    seeding.seed_run(0)
    model = compile_model(build_model(cfg.model, data.image_size, len(data.class_names)), cfg.train)
    train, val = to_dataset(data.train, 32, shuffle_seed=0), to_dataset(data.val, 32)
    model.fit(train.take(2), validation_data=val.take(2), epochs=1, verbose=0)  # traced once
    per_step = timed(lambda: model.fit(train.take(steps), epochs=1, verbose=0)) / steps
    return per_step * -(-len(data.train) // 32) + timed(lambda: model.predict(val, verbose=0))


def transfer_phases(load, data, root: str) -> tuple[float, float]:
    """Seconds of the feature pass into an empty cache, and of a head fit's epoch."""
    from catdog.training import features, fitting, seeding
    from catdog.training.plan import fit_plan

    cfg = load(["model=transfer", f"features.cache_dir={root}/features", "train.epochs=3"])
    plan = fit_plan(cfg)
    cache = features.cache_for(None, data, cfg, plan)
    started = time.perf_counter()
    cached = cache.features(cfg)
    feature_pass = time.perf_counter() - started
    seeding.seed_run(0)
    trainable = fitting.build(cfg, data, plan, cached)
    fit = timed(lambda: fitting.fit(cfg, data, plan, trainable, cached))
    return feature_pass, fit / cfg.train.epochs


def fine_tuning(load, data, root: str, steps: int) -> float:
    """Seconds of a `finetuned` second-stage epoch, from STEPS steps and 160 validation images."""
    import numpy as np

    from catdog.data import StudyData, batches
    from catdog.models import backbone_cut
    from catdog.training import features, fitting, seeding
    from catdog.training.features import view_dataset
    from catdog.training.plan import fit_plan

    n = 32 * (steps + 2)
    rows = np.random.default_rng(0).permutation(len(data.train))[:n]
    small = StudyData(data.train.subset(rows), data.val.subset(slice(0, 160)), data.test.subset(slice(0, 32)),
                      data.class_names, data.source)  # fmt: skip
    cfg = load(["model=finetuned", f"features.cache_dir={root}/activations"])
    plan = fit_plan(cfg)
    cached = features.cache_for(None, small, cfg, plan).features(cfg)
    seeding.seed_run(0)
    trainable = fitting.build(cfg, small, plan, cached)
    backbone_cut.unfreeze(trainable.tuned, trainable.fine_tune_from)
    model = fitting.compile_model(trainable.model, cfg.train, fitting.fine_tune_learning_rate(cfg.train))
    train = view_dataset(cached.train, small.train.labels, 32, seed=0)
    model.fit(train.take(2), epochs=1, verbose=0)  # traced once
    per_step = timed(lambda: model.fit(train.skip(2).take(steps), epochs=1, verbose=0)) / steps
    val = batches(cached.val, small.val.labels, 32)
    model.predict(val.take(1), verbose=0)
    per_val_image = timed(lambda: model.predict(val, verbose=0)) / len(small.val)
    return per_step * -(-len(data.train) // 32) + per_val_image * len(data.val)


def child(steps: int) -> None:
    """One arm's process: every phase, printed as one JSON line."""
    from catdog.config import load as compose
    from catdog.data import load_study_data
    from catdog.tracking.environment import onednn

    weights = os.environ.get("CATDOG_BACKBONE_WEIGHTS", "imagenet")

    def load(overrides: list[str]):
        backbone = [f"model.backbone.weights={weights}"] if overrides[0] != "model=preprocessed" else []
        return compose("train", [*overrides, "train.verbose=0", *backbone])

    with tempfile.TemporaryDirectory(prefix="catdog-onednn-") as root:
        data = load_study_data(load(["model=preprocessed"]).data)
        out = {"onednn": onednn(), PHASES[0]: plain_cnn(load, data, steps)}
        out[PHASES[1]], out[PHASES[2]] = transfer_phases(load, data, root)
        out[PHASES[3]] = fine_tuning(load, data, root, steps)
    print(json.dumps(out), flush=True)


def run_arm(env: dict[str, str], steps: int) -> dict:
    full = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", **env}
    done = subprocess.run([sys.executable, __file__, "--child", "--steps", str(steps)], env=full,
                          capture_output=True, text=True)  # fmt: skip
    if done.returncode:
        raise SystemExit(f"an arm failed ({env}):\n{done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def isa_line(isa: str) -> str:
    from catdog.tracking.environment import machine

    info = machine()
    capped = ", oneDNN capped at AVX2 (ONEDNN_MAX_CPU_ISA=AVX2), standing in for an AVX2-only CPU"
    return f"{info['env.cpu']}, {info['env.cores']} cores, ISA flags {info['env.isa']}{capped if isa == 'avx2' else ''}"


def phases_report(args, base_env: dict[str, str]) -> None:
    table = arms()
    times = {name: [] for name in table}
    for r in range(args.rounds):
        names = list(table) if r % 2 == 0 else list(reversed(table))
        for name in names:
            times[name].append(run_arm({**table[name], **base_env}, args.steps))
            print(f"round {r + 1} {name}: " + ", ".join(f"{p} {times[name][-1][p]:.1f} s" for p in PHASES), flush=True)
    base = "oneDNN off (Eigen)"
    print(f"\n{isa_line(args.isa)}; {args.rounds} rounds, each arm a fresh process; seconds, each round's, "
          f"and the speed-up of the median over '{base}'\n")  # fmt: skip
    print("| arm | oneDNN | " + " | ".join(PHASES) + " |")
    print("|---|---|" + "---|" * len(PHASES))
    for name, rounds in times.items():
        cells = []
        for p in PHASES:
            median = statistics.median(x[p] for x in rounds)
            ratio = statistics.median(x[p] for x in times[base]) / median
            cells.append(f"{median:.1f} ({', '.join(f'{x[p]:.1f}' for x in rounds)}) {ratio:.2f}x")
        print(f"| {name} | {rounds[0]['onednn']} | " + " | ".join(cells) + " |")


COMMANDS = {
    "catdog-train model=preprocessed train.epochs=3": ["catdog-train", "model=preprocessed", "train.epochs=3"],
}
LONG = {
    "catdog-tune model=transfer tuner=random tuner.max_trials=20": [
        "catdog-tune", "model=transfer", "tuner=random", "tuner.max_trials=20",
    ],
    "catdog-train model=finetuned": ["catdog-train", "model=finetuned"],
}  # fmt: skip


def commands_report(args, base_env: dict[str, str]) -> None:
    """Whole commands, oneDNN off and on alternating, each into a fresh store."""
    commands = {**COMMANDS, **(LONG if args.long else {})}
    bindir = Path(sys.executable).parent
    rows = []
    for name, argv in commands.items():
        seconds = {"off": [], "on": []}
        for r in range(args.rounds):
            for setting in ("off", "on") if r % 2 == 0 else ("on", "off"):
                with tempfile.TemporaryDirectory(prefix="catdog-onednn-cmd-") as root:
                    env = {**os.environ, **base_env, "TF_CPP_MIN_LOG_LEVEL": "2",
                           "TF_ENABLE_ONEDNN_OPTS": "1" if setting == "on" else "0"}  # fmt: skip
                    overrides = [f"paths.mlruns_dir={root}", f"tracking.uri=sqlite:///{root}/mlflow.db",
                                 f"hydra.run.dir={root}/out", "train.verbose=0", "seed=0"]  # fmt: skip
                    started = time.perf_counter()
                    subprocess.run([str(bindir / argv[0]), *argv[1:], *overrides], env=env, check=True,
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
                    seconds[setting].append(time.perf_counter() - started)
                print(f"{name}, oneDNN {setting}: {seconds[setting][-1]:.0f} s", flush=True)
        rows.append((name, seconds))
    print(f"\n{isa_line(args.isa)}; whole commands, {args.rounds} rounds alternating\n")
    print("| command | oneDNN off, s | oneDNN on, s | off / on |\n|---|---|---|---|")
    for name, s in rows:
        off, on = statistics.median(s["off"]), statistics.median(s["on"])
        listed = {k: ", ".join(f"{x:.0f}" for x in v) for k, v in s.items()}
        print(f"| `{name}` | {off:.0f} ({listed['off']}) | {on:.0f} ({listed['on']}) | {off / on:.2f}x |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--steps", type=int, default=20, help="training steps timed per phase")
    parser.add_argument("--isa", choices=("native", "avx2"), default="native")
    parser.add_argument("--commands", action="store_true", help="time whole commands, oneDNN off against on")
    parser.add_argument("--long", action="store_true", help="with --commands: the 20-trial search and finetuned too")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return child(args.steps)
    base_env = {"ONEDNN_MAX_CPU_ISA": "AVX2"} if args.isa == "avx2" else {}
    (commands_report if args.commands else phases_report)(args, base_env)


if __name__ == "__main__":
    main()
