"""The sections of a settings file, each read into its stage's config.

A settings file (``deepcolor ... --config FILE``) is TOML with optional
``[features]``, ``[train]``, ``[refine]`` and ``[clusters]`` tables; the keys of
each are the fields of that stage's dataclass. The generic reading is
`deepcolor.config.load_toml`; this module only names the sections.
"""

from deepcolor.clustering.config import ClusterConfig
from deepcolor.config import load_toml
from deepcolor.features.config import FeatureConfig
from deepcolor.networks_config import TrainConfig
from deepcolor.refine.config import RefineConfig

CONFIG_SECTIONS = {"features": FeatureConfig, "train": TrainConfig, "refine": RefineConfig,
                   "clusters": ClusterConfig}


def load_settings(path):
    """Read a settings file: a dict mapping each name of `CONFIG_SECTIONS` to its config.

    Sections the file leaves out get their defaults. Raises ValueError naming
    `path` for an unreadable file, invalid TOML, an unknown section or setting,
    or an invalid value.
    """
    return load_toml(path, CONFIG_SECTIONS)
