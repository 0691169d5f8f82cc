"""The ADE20K teacher: the pretrained scene parser of the data folder, run with TensorFlow Lite.

The file (DeepLabV3 on MobileNetV2, 151 ADE20K classes, channel 0
background) is identified by its sha256. `TFLiteParser` runs it as it is, on
RGB or grey images; `deepcolor.features.deeplab` rebuilds it in torch, which
the grey-image parser is distilled from (`deepcolor.distill`).
"""

import hashlib
from pathlib import Path

import cv2
import numpy as np

from ._validate import check_gray
from .classprob import resize_channels, softmax

# The pretrained ADE20K parser of ../shared/data/models (DeepLabV3, MobileNetV2).
ADE20K_MODEL_SHA256 = "9476784566f88bf0bdc3169f0012fb7d08857b325811d8c1aaf5ada1c0d4e4f9"
ADE20K_MODEL_NAME = "deeplabv3_mobilenetv2_ade20k.tflite"
ADE20K_INPUT_SIZE = 513


class TFLiteParser:
    """The ADE20K scene parser (DeepLabV3 + MobileNetV2) run with TensorFlow Lite.

    Parameters
    ----------
    model_path : str or Path
        The ``.tflite`` file (see ../shared/data/README.md); its sha256 is checked.
    threads : int, optional
        Interpreter threads.

    Notes
    -----
    The network takes a 513x513 RGB image scaled to [-1, 1]; the image is
    stretched to that size and the 151 logits (channel 0: background) are
    resized back to the image's size before the softmax. A grey image is fed
    as three equal channels. Needs the optional package ``ai-edge-litert``
    (``pip install 'deepcolor[semantic]'``).
    """

    def __init__(self, model_path, threads=2):
        model_path = Path(model_path)
        if not model_path.is_file():
            raise FileNotFoundError(
                f"{model_path}: ADE20K parser not found; it is {ADE20K_MODEL_NAME} from the data "
                f"folder (../shared/data/models/, see its README), the TF-Hub model "
                f"lite-model/deeplabv3-mobilenetv2-ade20k/1/default/1"
            )
        sha = hashlib.sha256(model_path.read_bytes()).hexdigest()
        if sha != ADE20K_MODEL_SHA256:
            raise ValueError(f"{model_path}: sha256 {sha} is not that of {ADE20K_MODEL_NAME} "
                             f"({ADE20K_MODEL_SHA256})")
        try:  # lazy: an optional package, needed only to run the .tflite file
            from ai_edge_litert.interpreter import Interpreter
        except ImportError:
            raise ImportError("the TFLite parser needs the package ai-edge-litert: "
                              "pip install 'deepcolor[semantic]'") from None
        self.interpreter = Interpreter(model_path=str(model_path), num_threads=threads)
        self.interpreter.allocate_tensors()
        self._input = self.interpreter.get_input_details()[0]["index"]
        self._output = self.interpreter.get_output_details()[0]["index"]
        self.n_classes = 151
        self.sha256 = sha
        self.class_names = tuple(f"ade20k-{i}" for i in range(self.n_classes))

    def raw_logits(self, rgb):
        """Logits (513, 513, 151) float32 of a float RGB image (H, W, 3) in [0, 1], stretched to 513x513."""
        rgb = np.asarray(rgb, np.float32)
        if rgb.ndim != 3 or rgb.shape[-1] != 3:
            raise ValueError(f"rgb must be (H, W, 3), got {rgb.shape}")
        size = (ADE20K_INPUT_SIZE, ADE20K_INPUT_SIZE)
        x = cv2.resize(rgb, size, interpolation=cv2.INTER_LINEAR) * 2.0 - 1.0  # [-1, 1]
        self.interpreter.set_tensor(self._input, x[None])
        self.interpreter.invoke()
        return self.interpreter.get_tensor(self._output)[0]  # (513, 513, 151)

    def logits(self, rgb):
        """Logits (H, W, 151) float32 of a float RGB image (H, W, 3) in [0, 1], at the image's size."""
        return resize_channels(self.raw_logits(rgb), np.asarray(rgb).shape[:2])  # (H, W, 151)

    def predict_proba(self, gray):
        """Class probabilities (H, W, 151) of a grey image (H, W) in [0, 1]."""
        gray = check_gray(gray)
        rgb = np.repeat(gray.astype(np.float32)[..., None], 3, axis=2)
        return softmax(self.logits(rgb))
