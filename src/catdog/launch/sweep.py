"""A command line's sweep, parsed once: the jobs the basic sweeper will launch, each
composed and checked before the first job starts."""

from __future__ import annotations

import itertools

from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.errors import HydraException
from omegaconf.errors import OmegaConfBaseException

from catdog import CatdogError, schema
from catdog.config import load, one_line


def _choices(overrides: list[str]) -> list[list[str]]:
    """Per override, its values as `key=value` lines (one line for a plain override).
    Interval sweeps are left out: they are an optimising sweeper's business."""
    out = []
    for o in OverridesParser.create().parse_overrides(overrides):
        if o.is_discrete_sweep():
            out.append([f"{o.get_key_element()}={v}" for v in o.sweep_string_iterator()])
        elif not o.is_sweep_override():
            out.append([o.input_line])
    return out


def jobs(overrides: list[str]) -> list[list[str]]:
    """The jobs of a sweep, in the basic sweeper's order (the first override outermost)."""
    return [list(job) for job in itertools.product(*_choices(overrides))]


def check_command_line(config_name: str, argv: list[str]) -> None:
    """Compose CONFIG_NAME with ARGV's overrides as the Hydra app will, once per job, and run
    the schemas' checks (a search's too, which compare groups): a bad override, value or
    combination fails here, in one line, before any job of a sweep starts (about 0.1 s a
    job here, against minutes for the job). Hydra's own flags (--cfg, --help, ...) and
    `hydra.*` overrides are Hydra's business and left to it."""
    if any(arg.startswith("-") and arg not in ("-m", "--multirun") for arg in argv):
        return
    overrides = [arg for arg in argv if not arg.startswith("-") and not arg.lstrip("+~").startswith("hydra")]
    try:
        for job in jobs(overrides):
            cfg = load(config_name, job)
            schema.validate(cfg)
            if "search" in cfg:
                schema.check_search(cfg)
    except (HydraException, OmegaConfBaseException) as exc:
        raise CatdogError(one_line(exc)) from exc
