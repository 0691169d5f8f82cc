"""Chrominance refinement guided by the luminance (Cheng et al. 2015, Sec. 3.3)."""

from .bilateral import joint_bilateral_refine

__all__ = ["joint_bilateral_refine"]
