"""What every stage's settings share: the base class, the validators and TOML reading.

Each stage keeps its own frozen dataclass beside its code
(`deepcolor.features.config.FeatureConfig`, `deepcolor.clustering.config.ClusterConfig`,
`deepcolor.refine.config.RefineConfig`, `deepcolor.networks_config.TrainConfig`);
`deepcolor.settings` gathers them into the sections of a settings file. This
module imports no stage, so any stage can build on it.

Defaults cite the paper where it fixes them; every other default is our choice,
documented with the measurement that decided it in docs/DESIGN.md. Each config
validates itself on construction, round-trips through a plain dict (stored as
JSON in every artifact) and can be loaded from a TOML file.
"""

import dataclasses
import math
import numbers
import tomllib

# The validators below name the rule and the value in their message. By default
# they take plain Python numbers only, as a setting stored as JSON must be;
# `numpy=True` also takes NumPy scalars (np.int64, np.float32), for the
# parameters of functions on arrays, which often come from arrays.


def _is_int(value, numpy):
    kinds = numbers.Integral if numpy else int
    return isinstance(value, kinds) and not isinstance(value, bool)


def _is_real(value, numpy):
    kinds = numbers.Real if numpy else (int, float)
    return isinstance(value, kinds) and not isinstance(value, bool)


def check_positive_int(name, value, *, numpy=False):
    """Raise ValueError unless `value` is an int >= 1 (never a bool); return it."""
    if not _is_int(value, numpy) or value < 1:
        raise ValueError(f"{name} must be a positive int, got {value!r}")
    return value


def check_int(name, value, minimum, *, numpy=False):
    """Raise ValueError unless `value` is an int >= `minimum` (never a bool); return it."""
    if not _is_int(value, numpy) or value < minimum:
        raise ValueError(f"{name} must be an int >= {minimum}, got {value!r}")
    return value


def check_positive_float(name, value, *, numpy=False):
    """Raise ValueError unless `value` is a finite number > 0 (never a bool); return it as a float."""
    if not _is_real(value, numpy) or not 0 < value < math.inf:
        raise ValueError(f"{name} must be a positive finite number, got {value!r}")
    return float(value)


def check_non_negative_float(name, value, *, numpy=False):
    """Raise ValueError unless `value` is a finite number >= 0 (never a bool); return it as a float."""
    if not _is_real(value, numpy) or not 0 <= value < math.inf:
        raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")
    return float(value)


def check_one_of(name, value, choices):
    """Raise ValueError unless `value` is one of `choices`; return it."""
    if value not in choices:
        raise ValueError(f"{name} must be one of {choices}, got {value!r}")
    return value


def check_bool(name, value):
    """Raise ValueError unless `value` is True or False; return it."""
    if not isinstance(value, bool):
        raise ValueError(f"{name} must be a bool, got {value!r}")
    return value


class Config:
    """Base of the stages' frozen dataclasses: dict round trip and copies with changes."""

    def to_dict(self):
        """The settings as a plain dict (tuples as lists), as stored in JSON."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(self).items()}

    @classmethod
    def from_dict(cls, data):
        """The config of a dict such as `to_dict` gives; unknown keys raise ValueError."""
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise ValueError(f"unknown {cls.__name__} setting(s) {unknown}; known: {sorted(names)}")
        kwargs = {k: tuple(v) if isinstance(v, list) else v for k, v in data.items()}
        return cls(**kwargs)

    def replace(self, **changes):
        """A copy with `changes` applied; None values are ignored (unset CLI options)."""
        return dataclasses.replace(self, **{k: v for k, v in changes.items() if v is not None})


def load_toml(path, sections):
    """Read a TOML file whose tables are settings sections.

    Parameters
    ----------
    path : str or path-like
        The settings file.
    sections : mapping of str to Config subclass
        The known tables and the config class each is read into
        (`deepcolor.settings.CONFIG_SECTIONS`).

    Returns
    -------
    dict
        Section name to its config object, in the order of `sections`
        (defaults for the sections the file leaves out).

    Raises
    ------
    ValueError
        If the file cannot be read, is not TOML, has an unknown table, or a
        setting is unknown or invalid; the message starts with `path`.
    """
    try:
        with open(path, "rb") as fh:
            data = tomllib.load(fh)
    except OSError as exc:
        raise ValueError(f"{path}: cannot read settings file ({exc.strerror or exc})") from None
    except tomllib.TOMLDecodeError as exc:
        raise ValueError(f"{path}: not valid TOML ({exc})") from None
    unknown = sorted(set(data) - set(sections))
    if unknown:
        raise ValueError(f"{path}: unknown section(s) {unknown}; known: {sorted(sections)}")
    try:
        return {name: cls.from_dict(data.get(name, {})) for name, cls in sections.items()}
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{path}: {exc}") from None
