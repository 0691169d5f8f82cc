"""How far the per-pixel features reach: the smallest image they are computed on."""

# The scene parser and an ensemble's global descriptors want some context: never fewer rows or
# columns than this.
MIN_WORK_SIDE = 16


def min_working_side(feature_config):
    """The fewest rows and columns the features are computed on (smaller images are padded to it).

    Parameters
    ----------
    feature_config : FeatureConfig
        Its ``patch_size`` and ``daisy_radius`` are used.

    Returns
    -------
    int

    Notes
    -----
    The patch and DAISY reach ``patch_size // 2`` and ``daisy_radius`` px
    around each pixel, with reflected borders that need one more; the scene
    parser and the global descriptors of an ensemble want some context, so
    never fewer than `MIN_WORK_SIDE` px.
    """
    return max(feature_config.patch_size // 2 + 1, feature_config.daisy_radius + 1, MIN_WORK_SIDE)
