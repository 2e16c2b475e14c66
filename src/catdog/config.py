"""Composing the project's Hydra configs outside a Hydra app (the `catdog` CLI, tests), and
checking a command line's overrides before a Hydra app starts on them."""

from __future__ import annotations

from hydra import compose, initialize_config_dir
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.errors import HydraException, OverrideParseException
from omegaconf.errors import OmegaConfBaseException

from catdog import CONFIG_DIR, CatdogError, schema

schema.register()


def load(config_name: str = "train", overrides: list[str] | None = None):
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base=None):
        return compose(config_name=config_name, overrides=list(overrides or []))


def check_command_line(config_name: str, argv: list[str]) -> None:
    """Compose CONFIG_NAME with ARGV's overrides as the Hydra app will, once per value of
    each swept setting, and run the schemas' checks: a bad override or value fails here, in
    one line, before any job of a sweep starts. Hydra's own flags (--cfg, --help, ...) and
    `hydra.*` overrides are Hydra's business and left to it."""
    if any(arg.startswith("-") and arg not in ("-m", "--multirun") for arg in argv):
        return
    overrides = [arg for arg in argv if not arg.startswith("-") and not arg.lstrip("+~").startswith("hydra")]
    try:
        for combination in _combinations(OverridesParser.create().parse_overrides(overrides)):
            schema.validate(load(config_name, combination))
    except (HydraException, OmegaConfBaseException) as exc:
        raise CatdogError(one_line(exc)) from exc


def _combinations(parsed) -> list[list[str]]:
    """The overrides with each sweep at its first value, then each other value of every
    sweep in turn: every value composed once, not every combination."""
    values = [
        [f"{o.get_key_element()}={v}" for v in o.sweep_string_iterator()] if o.is_discrete_sweep() else [o.input_line]
        for o in parsed
        if not (o.is_sweep_override() and not o.is_discrete_sweep())  # interval sweeps: the sweeper's
    ]
    first = [choices[0] for choices in values]
    out = [first]
    for i, choices in enumerate(values):
        out += [[*first[:i], value, *first[i + 1 :]] for value in choices[1:]]
    return out


def one_line(exc: Exception) -> str:
    """Hydra's message in one line: its first line, the cause's first line (the key and the
    value OmegaConf refused), or the available options of a config group."""
    text = str(exc).split("Config search path:")[0]
    lines = [line for line in text.splitlines() if line.strip()]
    head = lines[0].rstrip(".") if lines else type(exc).__name__
    if isinstance(exc, OverrideParseException):
        return f"cannot parse override '{exc.override}': {head}"
    options = [line.strip() for line in lines if line.startswith("\t")]
    if options:
        where = next(line for line in lines if line.startswith("Available options"))
        return f"{head}. {where} {', '.join(options)}"
    if exc.__cause__ is not None and str(exc.__cause__).strip():
        return f"{head}: {str(exc.__cause__).splitlines()[0]}"
    return head
