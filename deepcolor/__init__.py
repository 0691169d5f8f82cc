"""deepcolor: Deep Colorization (Cheng, Yang and Sheng, ICCV 2015) as usable software.

The pipeline, one stage per sub-package::

    grey image -> luminance Y              deepcolor.color
               -> per-pixel features       deepcolor.features
               -> network (U, V)           deepcolor.networks, deepcolor.ensemble
               -> refinement guided by Y   deepcolor.refine
               -> Y with the predicted U, V
"""

__version__ = "0.1.0"
