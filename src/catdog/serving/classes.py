"""The class names a logged model answers in: those its run was trained with."""

from __future__ import annotations

import ast

from catdog.schema.run import DataConfig

DEFAULT = tuple(DataConfig().class_names)


def class_names(run) -> list[str]:
    """RUN's `data.class_names` param (runs log every config value), else the default pair."""
    return ast.literal_eval(run.data.params.get("data.class_names", str(list(DEFAULT))))
