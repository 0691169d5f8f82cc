"""The ADE20K scene parser (DeepLabV3+ on MobileNetV2) rebuilt in torch.

The pretrained parser of ../shared/data/models is a TensorFlow Lite file. Its
graph is read here once (`read_tflite`, needs the optional ``tflite``
package) and turned into a plain list of layers (`spec`, JSON) and their
weights (int8 weights dequantised, batch normalisation folded into the
convolutions), which `DeepLabNet` runs in torch at any input size. A parser
directory stores the spec and the weights, so loading it needs neither
TensorFlow Lite nor the ``tflite`` package.

The graph, as read: MobileNetV2 at output stride 8 (its dilated blocks
stored as SpaceToBatch / depthwise convolution / BatchToSpace, here one
dilated convolution), an image-pooling branch and a 1x1 branch (ASPP
without the atrous branches), a DeepLabV3+ decoder (48 channels of the
second block's depthwise output, two separable convolutions) and 151 logits
(channel 0 background) at a quarter of the input size. The file's final
bilinear resize to the input size is left out: `DeepLabNet` returns the
quarter-size logits and the caller upsamples what it needs.

References
----------
.. [1] L.-C. Chen et al., "Encoder-Decoder with Atrous Separable Convolution
   for Semantic Image Segmentation", ECCV 2018.
.. [2] M. Sandler et al., "MobileNetV2: Inverted Residuals and Linear
   Bottlenecks", CVPR 2018.
"""

import hashlib
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .teacher import ADE20K_MODEL_NAME, ADE20K_MODEL_SHA256

ACTIVATIONS = ("none", "relu", "relu6")
_TFLITE_ACTIVATIONS = {0: "none", 1: "relu", 3: "relu6"}  # tflite.ActivationFunctionType
_TFLITE_TYPES = {0: np.float32, 2: np.int32, 9: np.int8}  # tflite.TensorType
# The block whose stride DeepLab turns into dilation at output stride 8 (1/16 of the image at 16).
_OS16_BLOCK = "expanded_conv_6/"


def _op_options(tflite, op, name):
    """The typed options of an operator (None for operators without them); `tflite` is the package."""
    classes = {"CONV_2D": tflite.Conv2DOptions, "DEPTHWISE_CONV_2D": tflite.DepthwiseConv2DOptions,
               "ADD": tflite.AddOptions, "MUL": tflite.MulOptions, "AVERAGE_POOL_2D": tflite.Pool2DOptions,
               "RESIZE_BILINEAR": tflite.ResizeBilinearOptions, "CONCATENATION": tflite.ConcatenationOptions}
    raw = op.BuiltinOptions()
    if name not in classes or raw is None:
        return None
    opts = classes[name]()
    opts.Init(raw.Bytes, raw.Pos)
    return opts


def read_tflite(path):
    """Read the ADE20K DeepLab TFLite graph into a layer spec and float32 weights.

    Parameters
    ----------
    path : str or Path
        ``deeplabv3_mobilenetv2_ade20k.tflite`` (../shared/data/models).

    Returns
    -------
    spec : list of dict
        Layers in execution order; tensor 0 is the (N, 3, S, S) input.
        ``{"op": "conv", "in", "out", "cin", "cout", "k", "stride",
        "dilation", "groups", "act", "name"}``, ``{"op": "add", "in": [a, b],
        "out", "act"}``, ``{"op": "pool", "in", "out"}`` (global mean),
        ``{"op": "resize", "in", "out", "like"}`` (bilinear, corners aligned,
        to the size of tensor ``like``), ``{"op": "concat", "in": [...], "out"}``.
    weights : dict of str -> ndarray
        ``"{i}.weight"`` (cout, cin / groups, k, k) and ``"{i}.bias"`` for the
        i-th layer of `spec` when it is a convolution.

    Raises
    ------
    ValueError
        If the graph holds an operator or layout this reader does not know.
    """
    try:  # lazy: an optional package, needed only to read the .tflite file once
        import tflite
    except ImportError:
        raise ImportError("reading the TFLite parser needs the package tflite: "
                          "pip install 'deepcolor[semantic]'") from None
    with open(path, "rb") as fh:
        buf = fh.read()
    if buf[4:8] != b"TFL3":
        raise ValueError(f"{path}: not a TensorFlow Lite model (no TFL3 file identifier)")
    reader = _GraphReader(tflite, tflite.Model.GetRootAsModel(buf, 0))
    # the logits: the last convolution (the file's final resizes to the input size are left to the caller)
    last_conv = max(i for i in range(reader.graph.OperatorsLength()) if reader.op_name(i) == "CONV_2D")
    for i in range(last_conv + 1):
        reader.read_operator(i)
    return reader.spec, reader.weights


class _GraphReader:
    """The state of `read_tflite` as it walks the graph's operators in order.

    TFLite tensors are renumbered: our tensor 0 is the input, tensor i + 1 is
    the output of ``spec[i]``; operators that only move data (SpaceToBatch,
    BatchToSpace, a folded batch normalisation) map their output to their
    input's id.
    """

    def __init__(self, tflite, model):
        self.tflite, self.model, self.graph = tflite, model, model.Subgraphs(0)
        self.opnames = {getattr(tflite.BuiltinOperator, n): n for n in dir(tflite.BuiltinOperator)
                        if not n.startswith("_")}
        self.consts = {}  # dequantised weights, by tflite tensor
        self.ids = {int(self.graph.Inputs(0)): 0}  # tflite tensor -> our tensor id
        self.first_of_size = {self.shape(int(self.graph.Inputs(0)))[1:3]: 0}  # static (h, w) -> first tensor
        self.producer = {}  # our tensor id -> index in spec
        self.spec, self.weights, self.rate = [], {}, 1

    def shape(self, t):
        return tuple(int(v) for v in self.graph.Tensors(t).ShapeAsNumpy())

    def const(self, t):
        tensor = self.graph.Tensors(t)
        data = self.model.Buffers(tensor.Buffer()).DataAsNumpy()
        if isinstance(data, int) or tensor.Type() not in _TFLITE_TYPES:
            return None  # an activation, not a constant
        arr = np.frombuffer(data.tobytes(), _TFLITE_TYPES[tensor.Type()]).reshape(self.shape(t))
        if tensor.Type() == 9:  # int8 weights: scale * (q - zero point), per tensor or per channel
            q = tensor.Quantization()
            scale, zero = q.ScaleAsNumpy(), q.ZeroPointAsNumpy()
            axis = q.QuantizedDimension()
            bshape = [1] * arr.ndim
            bshape[axis] = -1
            arr = (arr.astype(np.float32) - np.reshape(zero, bshape)) * np.reshape(scale, bshape)
        return arr.astype(np.float32) if arr.dtype != np.int32 else arr

    def op_name(self, i):
        code = self.model.OperatorCodes(self.graph.Operators(i).OpcodeIndex())
        return self.opnames[max(code.BuiltinCode(), code.DeprecatedBuiltinCode())]

    def new_tensor(self, tfl_out, layer):
        tid = len(self.spec) + 1  # tensor i + 1 is layer i's output
        self.ids[tfl_out] = tid
        layer["out"] = tid
        self.producer[tid] = len(self.spec)
        self.spec.append(layer)
        self.first_of_size.setdefault(self.shape(tfl_out)[1:3], tid)
        return tid

    def read_operator(self, i):
        """Add operator `i` of the graph to the spec (or fold it into a layer there)."""
        op = self.graph.Operators(i)
        name = self.op_name(i)
        ins = [int(op.Inputs(j)) for j in range(op.InputsLength())]
        out = int(op.Outputs(0))
        opts = _op_options(self.tflite, op, name)
        ids = self.ids
        if name == "DEQUANTIZE":
            self.consts[out] = self.const(ins[0])
        elif name == "SPACE_TO_BATCH_ND":
            block = self.const(ins[1])
            if block[0] != block[1]:
                raise ValueError(f"operator {i}: SpaceToBatch with unequal block {block.tolist()}")
            self.rate, ids[out] = int(block[0]), ids[ins[0]]
        elif name == "BATCH_TO_SPACE_ND":
            ids[out] = ids[ins[0]]
        elif name in ("CONV_2D", "DEPTHWISE_CONV_2D"):
            self._conv(i, name, ins, out, opts)
        elif name in ("MUL", "ADD") and self.const(ins[1]) is not None:
            self._fold_affine(i, name, ins, out, opts)
        elif name == "ADD":
            self.new_tensor(out, {"op": "add", "in": [ids[ins[0]], ids[ins[1]]],
                                  "act": _TFLITE_ACTIVATIONS[opts.FusedActivationFunction()]})
        elif name == "AVERAGE_POOL_2D":
            if (opts.FilterHeight(), opts.FilterWidth()) != self.shape(ins[0])[1:3]:
                raise ValueError(f"operator {i}: average pooling that is not global")
            self.new_tensor(out, {"op": "pool", "in": ids[ins[0]]})
        elif name == "RESIZE_BILINEAR":
            self._resize(i, ins, out, opts)
        elif name == "CONCATENATION":
            if opts.Axis() not in (3, -1):
                raise ValueError(f"operator {i}: concatenation on axis {opts.Axis()}")
            self.new_tensor(out, {"op": "concat", "in": [ids[t] for t in ins]})
        else:
            raise ValueError(f"operator {i}: {name} is not supported by this reader")

    def _conv(self, i, name, ins, out, opts):
        """A convolution (depthwise or not), dilated by the SpaceToBatch block that came before it."""
        w = self.consts[ins[1]] if ins[1] in self.consts else self.const(ins[1])
        b = self.const(ins[2])
        if name == "CONV_2D":  # (O, kh, kw, I) -> (O, I, kh, kw)
            w, groups = w.transpose(0, 3, 1, 2), 1
        else:  # (1, kh, kw, C) -> (C, 1, kh, kw)
            if opts.DepthMultiplier() != 1:
                raise ValueError(f"operator {i}: depth multiplier {opts.DepthMultiplier()}")
            w, groups = w.transpose(3, 0, 1, 2), w.shape[-1]
        k = w.shape[-1]
        if opts.StrideW() != opts.StrideH() or w.shape[-2] != k:
            raise ValueError(f"operator {i}: non-square kernel or stride")
        same = opts.Padding() == 0
        if not same and not (self.rate > 1 or k == 1):
            raise ValueError(f"operator {i}: VALID padding outside a dilated block")
        bias_name = self.graph.Tensors(ins[2]).Name().decode()
        layer = {"op": "conv", "in": self.ids[ins[0]], "cin": int(w.shape[1] * groups), "cout": int(w.shape[0]),
                 "k": int(k), "stride": int(opts.StrideW()), "dilation": self.rate, "groups": int(groups),
                 "act": _TFLITE_ACTIVATIONS[opts.FusedActivationFunction()], "name": bias_name}
        self.weights[f"{len(self.spec)}.weight"] = np.ascontiguousarray(w, np.float32)
        self.weights[f"{len(self.spec)}.bias"] = np.ascontiguousarray(b, np.float32)
        self.new_tensor(out, layer)
        self.rate = 1

    def _fold_affine(self, i, name, ins, out, opts):
        """Batch normalisation after a dilated depthwise convolution: folded into it."""
        src = self.ids[ins[0]]
        layer_index = self.producer[src]
        layer = self.spec[layer_index]
        if layer["op"] != "conv" or layer["act"] != "none":
            raise ValueError(f"operator {i}: {name} by a constant after a non-linear layer")
        c = self.const(ins[1]).astype(np.float32)
        if name == "MUL":
            self.weights[f"{layer_index}.weight"] *= c[:, None, None, None]
            self.weights[f"{layer_index}.bias"] *= c
        else:
            self.weights[f"{layer_index}.bias"] += c
            layer["act"] = _TFLITE_ACTIVATIONS[opts.FusedActivationFunction()]
        self.ids[out] = src

    def _resize(self, i, ins, out, opts):
        """A bilinear resize, recorded as "to the size of" an earlier tensor rather than to fixed pixels."""
        if not opts.AlignCorners() or opts.HalfPixelCenters():
            raise ValueError(f"operator {i}: bilinear resize without aligned corners")
        spec, producer = self.spec, self.producer
        src = self.ids[ins[0]]
        target = tuple(int(v) for v in self.const(ins[1]))
        before = spec[producer[src]]
        pooled = before["op"] == "conv" and before["in"] in producer and spec[producer[before["in"]]]["op"] == "pool"
        if pooled:  # the image-pooling branch: back to the size of the map it pooled
            like = spec[producer[before["in"]]]["in"]
        else:
            like = self.first_of_size[target]
        self.new_tensor(out, {"op": "resize", "in": src, "like": like})


def with_output_stride(spec, output_stride):
    """A copy of `spec` at output stride 8 (as read) or 16: DeepLab's rule for MobileNetV2.

    At 16 the block ``expanded_conv_6`` strides by 2 and every dilation is
    halved, which quarters the pixels of the costly later blocks.
    """
    if output_stride not in (8, 16):
        raise ValueError(f"output_stride must be 8 or 16, got {output_stride!r}")
    spec = [dict(layer) for layer in spec]
    if output_stride == 16:
        for layer in spec:
            if layer["op"] != "conv":
                continue
            if _OS16_BLOCK in layer.get("name", "") and layer["groups"] > 1:
                layer["stride"] = 2
            layer["dilation"] = max(1, layer["dilation"] // 2)
    return spec


class DeepLabNet(nn.Module):
    """The DeepLab graph of a `spec` in torch: (N, C, S, S) in [-1, 1] -> logits (N, K, S', S').

    S' = (S - 1) // 4 + 1; S is best of the form 16 n + 1 (257, 321, 513), where
    TensorFlow's SAME padding is symmetric as here.

    Parameters
    ----------
    spec : list of dict
        From `read_tflite` (or a parser manifest).
    in_channels : int
        3 for RGB (the teacher), 1 for grey (`grey_from_rgb`).
    """

    def __init__(self, spec, in_channels=3):
        super().__init__()
        self.spec = [dict(layer) for layer in spec]
        self.in_channels = in_channels
        convs = {}
        for i, layer in enumerate(self.spec):
            if layer["op"] == "conv":
                cin = in_channels if layer["in"] == 0 else layer["cin"]
                k, d = layer["k"], layer["dilation"]
                convs[str(i)] = nn.Conv2d(cin, layer["cout"], k, stride=layer["stride"], padding=d * (k - 1) // 2,
                                          dilation=d, groups=layer["groups"])
        self.convs = nn.ModuleDict(convs)

    @staticmethod
    def _act(x, act):
        if act == "relu6":
            return F.relu6(x)
        if act == "relu":
            return F.relu(x)
        return x

    def forward(self, x):
        t = [x]
        for i, layer in enumerate(self.spec):
            op = layer["op"]
            if op == "conv":
                y = self._act(self.convs[str(i)](t[layer["in"]]), layer["act"])
            elif op == "add":
                y = self._act(t[layer["in"][0]] + t[layer["in"][1]], layer["act"])
            elif op == "pool":
                y = t[layer["in"]].mean(dim=(2, 3), keepdim=True)
            elif op == "resize":
                size = t[layer["like"]].shape[-2:]
                src = t[layer["in"]]
                y = src.expand(-1, -1, *size).contiguous() if src.shape[-2:] == (1, 1) else (
                    src if src.shape[-2:] == size else
                    F.interpolate(src, size=size, mode="bilinear", align_corners=True))
            elif op == "concat":
                y = torch.cat([t[j] for j in layer["in"]], dim=1)
            else:
                raise ValueError(f"layer {i}: unknown op {op!r}")
            t.append(y)
        return t[-1]


def state_from_weights(weights):
    """A `DeepLabNet` state dict from `read_tflite`'s weights."""
    return {f"convs.{key}": torch.from_numpy(np.ascontiguousarray(value)) for key, value in weights.items()}


def grey_from_rgb(net):
    """A 1-channel `DeepLabNet` equal to `net` fed a grey image as three equal channels.

    The first convolution's weights are summed over its colour channels, so
    the result is exact, not an approximation.
    """
    grey = DeepLabNet(net.spec, in_channels=1)
    state = {k: v.clone() for k, v in net.state_dict().items()}
    first = next(i for i, layer in enumerate(net.spec) if layer["op"] == "conv" and layer["in"] == 0)
    key = f"convs.{first}.weight"
    state[key] = state[key].sum(dim=1, keepdim=True)
    grey.load_state_dict(state)
    return grey


def teacher_net(tflite_path, output_stride=8):
    """The ADE20K parser of a TFLite file as an RGB `DeepLabNet` (checksum of the file checked)."""
    path = Path(tflite_path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: ADE20K parser not found; it is {ADE20K_MODEL_NAME} from the data "
                                f"folder (../shared/data/models/, see its README)")
    sha = hashlib.sha256(path.read_bytes()).hexdigest()
    if sha != ADE20K_MODEL_SHA256:
        raise ValueError(f"{path}: sha256 {sha} is not that of {ADE20K_MODEL_NAME} ({ADE20K_MODEL_SHA256})")
    spec, weights = read_tflite(path)
    net = DeepLabNet(with_output_stride(spec, output_stride))
    net.load_state_dict(state_from_weights(weights))
    return net.eval()
