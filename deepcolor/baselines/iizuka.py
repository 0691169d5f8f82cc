"""Baseline 4: the joint global and local network of Iizuka, Simo-Serra and Ishikawa.

Source
------
S. Iizuka, E. Simo-Serra, H. Ishikawa, "Let there be Color!: Joint End-to-end
Learning of Global and Local Image Priors for Automatic Image Colorization
with Simultaneous Classification", ACM Transactions on Graphics 35(4)
(Proc. SIGGRAPH 2016).

Their network (Sec. 3): shared low-level features (6 convolutions, 3 of
stride 2, 64 to 512 channels); mid-level features (2 convolutions, 512 and
256); global features from a copy of the image resized to 224 x 224 (the
same low-level network, 4 convolutions, 3 fully connected layers of 1024,
512 and 256); a fusion layer that appends the 256-vector to every
mid-level pixel and mixes them with one layer; a colorization network of
convolutions and two upsamplings to half the input size, with a sigmoid
output of the normalised chrominance, upsampled to the input size. The
loss is the squared error of the chrominance minus alpha times the
log-likelihood of the scene class (a classification network on the 512
global layer; alpha = 1/300) where labels exist.

Scaled down for the CPU
-----------------------
All channel counts divided by 4 at the default w = 16 (low level 16 to 128,
mid level 128 and 64, global vector 64, fully connected 256 and 128), the
global copy is 64 x 64 instead of 224 x 224, and the working size is 128
(224 in the paper). Batch normalisation after every convolution, as in the
paper; none in the fully connected layers (single-image batches occur).
The squared error is the mean over pixels and channels of the sigmoid output
against (ab / AB_RANGE + 1) / 2, the paper's normalised chrominance; the
paper writes it as a Frobenius norm (a sum), so at the same alpha our
classification term weighs relatively more. The class labels are the Intel
scene categories where given (Places in the paper); without labels the
classification network is not built and the loss is the squared error alone.
"""

import torch
from torch import nn

from deepcolor.baselines.data import AB_RANGE
from deepcolor.baselines.estimator import Baseline, _check_float, _check_int
from deepcolor.baselines.layers import conv_block


class IizukaNet(nn.Module):
    """L (N, 1, H, W) in [0, 1] -> (chroma (N, 2, H, W) in [0, 1], class logits (N, C) or None).

    H and W must be multiples of 8.

    Parameters
    ----------
    width : int
        w: low-level channels w, 2w, 4w, 8w; mid level 8w, 4w; global vector 4w.
    global_size : int
        Side of the resized copy the global branch sees; a multiple of 32.
        The global convolutions end at global_size / 32 per side.
    n_classes : int
        Classes of the classification network; 0 builds none.
    """

    def __init__(self, width=16, global_size=64, n_classes=0):
        super().__init__()
        w, self.global_size = width, global_size
        self.low = nn.Sequential(  # shared by the local and the global path
            conv_block(1, w, stride=2),          # (N, w, H/2, W/2)
            conv_block(w, 2 * w),
            conv_block(2 * w, 2 * w, stride=2),  # (N, 2w, H/4, W/4)
            conv_block(2 * w, 4 * w),
            conv_block(4 * w, 4 * w, stride=2),  # (N, 4w, H/8, W/8)
            conv_block(4 * w, 8 * w),            # (N, 8w, H/8, W/8)
        )
        self.mid = nn.Sequential(conv_block(8 * w, 8 * w), conv_block(8 * w, 4 * w))  # (N, 4w, H/8, W/8)
        g = global_size // 32  # side after the global convolutions
        self.global_conv = nn.Sequential(
            conv_block(8 * w, 8 * w, stride=2),  # (N, 8w, G/16, G/16)
            conv_block(8 * w, 8 * w),
            conv_block(8 * w, 8 * w, stride=2),  # (N, 8w, G/32, G/32)
            conv_block(8 * w, 8 * w),
        )
        self.global_fc = nn.Sequential(
            nn.Flatten(), nn.Linear(8 * w * g * g, 16 * w), nn.ReLU(inplace=True),
            nn.Linear(16 * w, 8 * w), nn.ReLU(inplace=True),  # (N, 8w): feeds the classifier
        )
        self.global_out = nn.Sequential(nn.Linear(8 * w, 4 * w), nn.ReLU(inplace=True))  # (N, 4w)
        self.classifier = (nn.Sequential(nn.Linear(8 * w, 4 * w), nn.ReLU(inplace=True), nn.Linear(4 * w, n_classes))
                           if n_classes else None)
        self.fusion = nn.Sequential(nn.Conv2d(8 * w, 4 * w, 1), nn.ReLU(inplace=True))  # mid ++ global
        self.colour = nn.Sequential(
            conv_block(4 * w, 2 * w),
            nn.Upsample(scale_factor=2, mode="nearest"),  # (N, 2w, H/4, W/4)
            conv_block(2 * w, w),
            conv_block(w, w),
            nn.Upsample(scale_factor=2, mode="nearest"),  # (N, w, H/2, W/2)
            conv_block(w, w // 2),
            nn.Conv2d(w // 2, 2, 3, padding=1),
            nn.Sigmoid(),                                 # (N, 2, H/2, W/2)
        )

    @property
    def n_classes(self):
        return 0 if self.classifier is None else self.classifier[-1].out_features

    def forward(self, L):
        local = self.mid(self.low(L))  # (N, 4w, H/8, W/8)
        copy = nn.functional.interpolate(L, size=(self.global_size,) * 2, mode="bilinear",
                                         align_corners=False, antialias=True)  # (N, 1, G, G)
        hidden = self.global_fc(self.global_conv(self.low(copy)))  # (N, 8w)
        glob = self.global_out(hidden)  # (N, 4w)
        glob = glob[:, :, None, None].expand(-1, -1, *local.shape[2:])  # (N, 4w, H/8, W/8)
        fused = self.fusion(torch.cat([local, glob], dim=1))  # (N, 4w, H/8, W/8)
        chroma = nn.functional.interpolate(self.colour(fused), size=L.shape[2:], mode="bilinear",
                                           align_corners=False)  # (N, 2, H, W)
        logits = None if self.classifier is None else self.classifier(hidden)  # (N, C)
        return chroma, logits


class Iizuka(Baseline):
    """Global and local colorization network with an optional joint scene classification.

    Parameters
    ----------
    global_size : int, optional
        Side of the global branch's resized copy, a multiple of 32 and at
        least 64 (224 in the paper): its last feature map is then at least
        2 x 2, which batch normalisation needs for single-image batches.
    alpha : float, optional
        Weight of the classification loss (Iizuka et al. 2016: 1/300).
    **common
        Settings of `deepcolor.baselines.estimator.Baseline`.

    Attributes
    ----------
    n_classes_ : int
        Classes of the classification network: 1 + the largest label given
        to `fit`, 0 (no network) when no image had a label.
    """

    name = "iizuka"
    stride = 8
    uses_labels = True
    _extra_settings = ("global_size", "alpha")

    def __init__(self, global_size=64, alpha=1 / 300, **common):
        super().__init__(**common)
        self.global_size = global_size
        self.alpha = alpha

    def _check_settings(self):
        super()._check_settings()
        _check_int("global_size", self.global_size, 64)
        if self.global_size % 32:
            raise ValueError(f"global_size must be a multiple of 32, got {self.global_size}")
        _check_float("alpha", self.alpha, 0.0, 1e3, low_open=False)
        if self.width % 2:
            raise ValueError(f"width must be even for iizuka, got {self.width}")

    def _prepare(self, data):
        known = None if data.labels is None else data.labels[data.labels >= 0]
        self.n_classes_ = int(known.max()) + 1 if known is not None and len(known) else 0

    def _fitted(self):
        return {"n_classes": self.n_classes_}

    def _set_fitted(self, fitted):
        n = fitted["n_classes"]
        _check_int("n_classes", n, 0)
        self.n_classes_ = n

    def _build(self):
        return IizukaNet(self.width, self.global_size, self.n_classes_)

    def _tensors(self, data):
        if self.n_classes_:
            return (data.L, data.ab, data.labels)
        return (data.L, data.ab)

    def _loss(self, module, L, ab, labels=None):
        chroma, logits = module(L)
        loss = nn.functional.mse_loss(chroma, (ab + 1.0) / 2.0)  # normalised chrominance in [0, 1]
        if logits is not None and labels is not None:
            known = labels >= 0
            if known.any():  # images without a label add no classification term
                loss = loss + self.alpha * nn.functional.cross_entropy(logits[known], labels[known])
        return loss

    def _decode(self, out):
        chroma, _ = out
        return (chroma * 2.0 - 1.0) * AB_RANGE  # (N, 2, h, w), Lab units
