"""catdog-study: the cats-vs-dogs Keras study as tracked, tunable experiments."""

from pathlib import Path

from omegaconf import OmegaConf

# The repository root (src/catdog/__init__.py -> ../..): configs anchor the tracking store
# and run outputs here so that every run shares one store whatever the working directory.
PROJECT_ROOT = Path(__file__).resolve().parents[2]
CONFIG_DIR = PROJECT_ROOT / "conf"

OmegaConf.register_new_resolver("catdog_root", lambda: str(PROJECT_ROOT), replace=True)


class CatdogError(Exception):
    """Bad input the user can fix (a setting, an argument, a file); command lines print it
    as one line and exit 2."""


class RunFailure(CatdogError):
    """The work could not be done though the input was fine: data that cannot be fetched,
    a server that does not answer, saved state that is damaged. One line, exit 1."""
