"""Network parts the comparison systems share."""

from torch import nn


def count_parameters(module):
    """Number of trainable parameters of a torch module."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad)


def conv_block(c_in, c_out, stride=1, dilation=1):
    """3x3 convolution (zero padding keeps the size / stride), batch normalisation, ReLU."""
    return nn.Sequential(nn.Conv2d(c_in, c_out, 3, stride, padding=dilation, dilation=dilation, bias=False),
                         nn.BatchNorm2d(c_out), nn.ReLU(inplace=True))
