"""Baseline 1: a convolutional autoencoder from L to ab, trained by mean squared error.

Source
------
The convolutional autoencoder colorizer in Lab described by Sayed et al., as
issue #6 names it: an encoder of strided convolutions, a decoder of
upsampling and convolutions, a tanh output scaled to the ab range, mean
squared error, Adam. (The issue gives the authors only; the full reference,
title, venue and year, was not available to us and must be added before
the report cites it.)

Scaled down for the CPU
-----------------------
Three stride-2 stages (the input is 128 px, the code 16 x 16) with widths
w, 2w, 4w, 8w (w = 16 by default; colorization autoencoders of this kind use
64 to 512 channels); batch normalisation after every convolution.
"""

from torch import nn

from deepcolor.baselines.data import AB_RANGE
from deepcolor.baselines.estimator import Baseline
from deepcolor.baselines.layers import conv_block


class AutoencoderNet(nn.Module):
    """L (N, 1, H, W) in [0, 1] -> ab / AB_RANGE (N, 2, H, W) in [-1, 1]; H, W multiples of 8.

    Parameters
    ----------
    width : int
        Channels of the first layer (w); the code has 8w channels at 1/8 of the size.
    """

    def __init__(self, width=16):
        super().__init__()
        w = width
        self.encoder = nn.Sequential(
            conv_block(1, w),                  # (N, w, H, W)
            conv_block(w, w, stride=2),        # (N, w, H/2, W/2)
            conv_block(w, 2 * w),
            conv_block(2 * w, 2 * w, stride=2),  # (N, 2w, H/4, W/4)
            conv_block(2 * w, 4 * w),
            conv_block(4 * w, 4 * w, stride=2),  # (N, 4w, H/8, W/8)
            conv_block(4 * w, 8 * w),            # (N, 8w, H/8, W/8): the code
        )
        self.decoder = nn.Sequential(
            conv_block(8 * w, 4 * w),
            nn.Upsample(scale_factor=2, mode="nearest"),  # (N, 4w, H/4, W/4)
            conv_block(4 * w, 2 * w),
            nn.Upsample(scale_factor=2, mode="nearest"),  # (N, 2w, H/2, W/2)
            conv_block(2 * w, w),
            nn.Upsample(scale_factor=2, mode="nearest"),  # (N, w, H, W)
            conv_block(w, w),
            nn.Conv2d(w, 2, 3, padding=1),
            nn.Tanh(),                                    # (N, 2, H, W) in [-1, 1]
        )

    def forward(self, L):
        return self.decoder(self.encoder(L))


class Autoencoder(Baseline):
    """Convolutional autoencoder colorizer (Sayed et al.; see the module docstring).

    Parameters are those of `deepcolor.baselines.estimator.Baseline`.
    """

    name = "autoencoder"
    stride = 8

    def _build(self):
        return AutoencoderNet(self.width)

    def _loss(self, module, L, ab):
        return nn.functional.mse_loss(module(L), ab)  # on ab / AB_RANGE

    def _decode(self, out):
        return out * AB_RANGE  # (N, 2, h, w), Lab units
