"""Where the models bundled with the package lie (package data, rebuilt by ``make default-model``)."""

from pathlib import Path

#: The model `deepcolor colorize` uses without ``--model``: the ensemble trained by ``make default-model``.
DEFAULT_MODEL = Path(__file__).parent / "models" / "default"
