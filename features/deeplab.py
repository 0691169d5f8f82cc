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

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

ACTIVATIONS = ("none", "relu", "relu6")
_TFLITE_ACTIVATIONS = {0: "none", 1: "relu", 3: "relu6"}  # tflite.ActivationFunctionType
_TFLITE_TYPES = {0: np.float32, 2: np.int32, 9: np.int8}  # tflite.TensorType
# The block whose stride DeepLab turns into dilation at output stride 8 (1/16 of the image at 16).
_OS16_BLOCK = "expanded_conv_6/"


def _op_options(op, name):
    import tflite

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
    try:
        import tflite
    except ImportError:
        raise ImportError("reading the TFLite parser needs the package tflite: "
                          "pip install 'deepcolor[semantic]'") from None
    with open(path, "rb") as fh:
        buf = fh.read()
    if buf[4:8] != b"TFL3":
        raise ValueError(f"{path}: not a TensorFlow Lite model (no TFL3 file identifier)")
    model = tflite.Model.GetRootAsModel(buf, 0)
    graph = model.Subgraphs(0)
    opnames = {getattr(tflite.BuiltinOperator, n): n for n in dir(tflite.BuiltinOperator) if not n.startswith("_")}

    def shape(t):
        return tuple(int(v) for v in graph.Tensors(t).ShapeAsNumpy())

    def const(t):
        tensor = graph.Tensors(t)
        data = model.Buffers(tensor.Buffer()).DataAsNumpy()
        if isinstance(data, int) or tensor.Type() not in _TFLITE_TYPES:
            return None  # an activation, not a constant
        arr = np.frombuffer(data.tobytes(), _TFLITE_TYPES[tensor.Type()]).reshape(shape(t))
        if tensor.Type() == 9:  # int8 weights: scale * (q - zero point), per tensor or per channel
            q = tensor.Quantization()
            scale, zero = q.ScaleAsNumpy(), q.ZeroPointAsNumpy()
            axis = q.QuantizedDimension()
            bshape = [1] * arr.ndim
            bshape[axis] = -1
            arr = (arr.astype(np.float32) - np.reshape(zero, bshape)) * np.reshape(scale, bshape)
        return arr.astype(np.float32) if arr.dtype != np.int32 else arr

    consts = {}
    ids = {int(graph.Inputs(0)): 0}  # tflite tensor -> our tensor id
    first_of_size = {shape(int(graph.Inputs(0)))[1:3]: 0}  # static (h, w) -> first tensor of that size
    producer = {}  # our tensor id -> index in spec
    spec, weights, rate = [], {}, 1

    def op_name(i):
        code = model.OperatorCodes(graph.Operators(i).OpcodeIndex())
        return opnames[max(code.BuiltinCode(), code.DeprecatedBuiltinCode())]

    # the logits: the last convolution (the file's final resizes to the input size are left to the caller)
    last_conv = max(i for i in range(graph.OperatorsLength()) if op_name(i) == "CONV_2D")

    def new_tensor(tfl_out, layer):
        tid = len(spec) + 1  # tensor i + 1 is layer i's output
        ids[tfl_out] = tid
        layer["out"] = tid
        producer[tid] = len(spec)
        spec.append(layer)
        first_of_size.setdefault(shape(tfl_out)[1:3], tid)
        return tid

    for i in range(last_conv + 1):
        op = graph.Operators(i)
        name = op_name(i)
        ins = [int(op.Inputs(j)) for j in range(op.InputsLength())]
        out = int(op.Outputs(0))
        opts = _op_options(op, name)
        if name == "DEQUANTIZE":
            consts[out] = const(ins[0])
        elif name == "SPACE_TO_BATCH_ND":
            block = const(ins[1])
            if block[0] != block[1]:
                raise ValueError(f"operator {i}: SpaceToBatch with unequal block {block.tolist()}")
            rate, ids[out] = int(block[0]), ids[ins[0]]
        elif name == "BATCH_TO_SPACE_ND":
            ids[out] = ids[ins[0]]
        elif name in ("CONV_2D", "DEPTHWISE_CONV_2D"):
            w = consts[ins[1]] if ins[1] in consts else const(ins[1])
            b = const(ins[2])
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
            if not same and not (rate > 1 or k == 1):
                raise ValueError(f"operator {i}: VALID padding outside a dilated block")
            bias_name = graph.Tensors(ins[2]).Name().decode()
            layer = {"op": "conv", "in": ids[ins[0]], "cin": int(w.shape[1] * groups), "cout": int(w.shape[0]),
                     "k": int(k), "stride": int(opts.StrideW()), "dilation": rate, "groups": int(groups),
                     "act": _TFLITE_ACTIVATIONS[opts.FusedActivationFunction()], "name": bias_name}
            weights[f"{len(spec)}.weight"] = np.ascontiguousarray(w, np.float32)
            weights[f"{len(spec)}.bias"] = np.ascontiguousarray(b, np.float32)
            new_tensor(out, layer)
            rate = 1
        elif name in ("MUL", "ADD") and const(ins[1]) is not None:
            # batch normalisation after a dilated depthwise convolution: fold into it
            src = ids[ins[0]]
            layer_index = producer[src]
            layer = spec[layer_index]
            if layer["op"] != "conv" or layer["act"] != "none":
                raise ValueError(f"operator {i}: {name} by a constant after a non-linear layer")
            c = const(ins[1]).astype(np.float32)
            if name == "MUL":
                weights[f"{layer_index}.weight"] *= c[:, None, None, None]
                weights[f"{layer_index}.bias"] *= c
            else:
                weights[f"{layer_index}.bias"] += c
                layer["act"] = _TFLITE_ACTIVATIONS[opts.FusedActivationFunction()]
            ids[out] = src
        elif name == "ADD":
            new_tensor(out, {"op": "add", "in": [ids[ins[0]], ids[ins[1]]],
                             "act": _TFLITE_ACTIVATIONS[opts.FusedActivationFunction()]})
        elif name == "AVERAGE_POOL_2D":
            if (opts.FilterHeight(), opts.FilterWidth()) != shape(ins[0])[1:3]:
                raise ValueError(f"operator {i}: average pooling that is not global")
            new_tensor(out, {"op": "pool", "in": ids[ins[0]]})
        elif name == "RESIZE_BILINEAR":
            if not opts.AlignCorners() or opts.HalfPixelCenters():
                raise ValueError(f"operator {i}: bilinear resize without aligned corners")
            src = ids[ins[0]]
            target = tuple(int(v) for v in const(ins[1]))
            before = spec[producer[src]]
            pooled = before["op"] == "conv" and before["in"] in producer and spec[producer[before["in"]]]["op"] == "pool"
            if pooled:  # the image-pooling branch: back to the size of the map it pooled
                like = spec[producer[before["in"]]]["in"]
            else:
                like = first_of_size[target]
            new_tensor(out, {"op": "resize", "in": src, "like": like})
        elif name == "CONCATENATION":
            if opts.Axis() not in (3, -1):
                raise ValueError(f"operator {i}: concatenation on axis {opts.Axis()}")
            new_tensor(out, {"op": "concat", "in": [ids[t] for t in ins]})
        else:
            raise ValueError(f"operator {i}: {name} is not supported by this reader")
    return spec, weights


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


# ---------------------------------------------------------------------------
# The grey-image parser: a DeepLabNet on the luminance, its classes merged.

PARSER_FORMAT = "deepcolor-parser"
PARSER_FORMAT_VERSION = 2  # 2: DeepLab graph (1 was the small student of issue 3, still read)
PARSER_WEIGHTS = "deeplab.safetensors"


class GreyParser:
    """A DeepLab scene parser run on a grey image: ``predict_proba(gray) -> (H, W, K)``.

    Parameters
    ----------
    net : DeepLabNet
        One input channel (`grey_from_rgb`), 151 ADE20K logits out.
    input_size : int
        The grey image is stretched to `input_size` x `input_size` (as the
        teacher's input is), best 16 n + 1.
    classes : sequence of str, optional
        The classes it answers in, in order; the last must be "other".
    mapping : dict of int -> str, optional
        ADE20K channel -> class of `classes`; unlisted channels are "other".
    info : dict, optional
        What made it (training record), kept in the manifest.

    Attributes
    ----------
    classes_ : tuple of str
        The K classes of `predict_proba`'s last axis, in order.

    Notes
    -----
    The 151 class probabilities are merged into the K classes on the network's
    quarter-size grid and only the K maps are upsampled (bilinearly) to the
    image's size: the same result as upsampling the 151 logits first, to
    interpolation error, at a fraction of the cost.
    """

    def __init__(self, net, input_size, classes=None, mapping=None, info=None):
        from deepcolor.features.labelsets import ADE20K_TO_COLOUR, COLOUR_CLASSES, class_matrix

        if net.in_channels != 1:
            raise ValueError(f"a grey parser's network takes 1 channel, got {net.in_channels}")
        if not isinstance(input_size, int) or isinstance(input_size, bool) or input_size < 33:
            raise ValueError(f"input_size must be an int >= 33, got {input_size!r}")
        self.net = net.eval()
        self.input_size = input_size
        self.classes_ = tuple(COLOUR_CLASSES if classes is None else classes)
        self.mapping = dict(ADE20K_TO_COLOUR if mapping is None else mapping)
        self._matrix = torch.from_numpy(class_matrix(151, self.mapping, self.classes_))
        self.info = dict(info or {})
        self.sha256 = None
        self._memo = None  # (key of the last grey image, its grid probabilities)

    @property
    def class_names(self):
        """The classes, as every parser of deepcolor names them (`classes_`)."""
        return self.classes_

    def with_classes(self, classes, mapping):
        """The same network answering in another class set (e.g. the 17 groups shared with MSRC-v2)."""
        other = GreyParser(self.net, self.input_size, classes, mapping, self.info)
        other.sha256 = self.sha256
        return other

    def grid_logits(self, gray):
        """ADE20K logits (151, g, g) of a grey image (H, W) in [0, 1] stretched to the input size."""
        import cv2

        from deepcolor.features._validate import check_gray

        gray = check_gray(gray).astype(np.float32)
        s = self.input_size
        interp = cv2.INTER_AREA if min(gray.shape) > s else cv2.INTER_LINEAR
        x = cv2.resize(gray, (s, s), interpolation=interp) * 2.0 - 1.0  # the teacher's [-1, 1]
        with torch.inference_mode():
            return self.net(torch.from_numpy(x)[None, None])[0]

    def grid_proba(self, gray):
        """Class probabilities (g, g, K) float32 on the network's quarter-size grid.

        The last image's result is kept: the semantic feature and the semantic
        histogram ask for the same image one after the other.
        """
        import hashlib

        gray = np.ascontiguousarray(gray)
        key = (gray.shape, gray.dtype.str, hashlib.blake2b(gray.tobytes(), digest_size=16).digest())
        memo = self._memo
        if memo is not None and memo[0] == key:
            return memo[1]
        with torch.inference_mode():
            prob = torch.softmax(self.grid_logits(gray), dim=0)  # (151, g, g)
            grid = torch.tensordot(prob, self._matrix, dims=([0], [0])).numpy()  # (g, g, K)
        self._memo = (key, grid)  # one assignment: a reader sees an old or a new pair, never half
        return grid

    def predict_proba(self, gray):
        """Class probabilities (H, W, K) float32 of a grey image (H, W) in [0, 1], summing to 1."""
        from deepcolor.features.semantic import resize_channels

        prob = resize_channels(np.ascontiguousarray(self.grid_proba(gray)), np.asarray(gray).shape)
        return prob / prob.sum(axis=-1, keepdims=True)  # float32 rounding only

    def save(self, out_dir, overwrite=False):
        """Write a parser directory: ``manifest.json`` and float16 ``deeplab.safetensors``, manifest last."""
        import hashlib
        import json
        from pathlib import Path

        from safetensors.torch import save as st_save

        from deepcolor import __version__
        from deepcolor.ensemble import versions
        from deepcolor.files import atomic_write_bytes, atomic_write_text

        out_dir = Path(out_dir)
        if (out_dir / "manifest.json").exists() and not overwrite:
            raise FileExistsError(f"{out_dir}: a parser is there already; pass overwrite=True to replace it")
        state = {k: v.detach().to(torch.float16).contiguous() for k, v in self.net.state_dict().items()}
        weights = st_save(state, metadata={"format": f"{PARSER_FORMAT} {__version__}"})
        atomic_write_bytes(out_dir / PARSER_WEIGHTS, weights)
        manifest = {"format": PARSER_FORMAT, "format_version": PARSER_FORMAT_VERSION, "versions": versions(),
                    "architecture": "deeplab", "input_size": self.input_size, "classes": list(self.classes_),
                    "mapping": {str(k): v for k, v in sorted(self.mapping.items())}, "spec": self.net.spec,
                    "files": {PARSER_WEIGHTS: hashlib.sha256(weights).hexdigest()}, "info": self.info}
        atomic_write_text(out_dir / "manifest.json", json.dumps(manifest, indent=1, default=float))
        self.sha256 = manifest["files"][PARSER_WEIGHTS]

    @classmethod
    def load(cls, parser_dir):
        """Load and verify a parser directory; raises ModelError naming the file and the problem."""
        from pathlib import Path

        from safetensors import SafetensorError
        from safetensors.torch import load as st_load

        from deepcolor.modelfiles import ModelError, read_verified

        manifest, blobs = read_verified(parser_dir, PARSER_FORMAT, PARSER_FORMAT_VERSION, "parser")
        try:
            net = DeepLabNet(manifest["spec"], in_channels=1)
            state = {k: v.float() for k, v in st_load(blobs[PARSER_WEIGHTS]).items()}
            net.load_state_dict(state, strict=True)
            mapping = {int(k): v for k, v in manifest["mapping"].items()}
            parser = cls(net, int(manifest["input_size"]), manifest["classes"], mapping, manifest.get("info"))
        except (KeyError, TypeError, ValueError, RuntimeError, SafetensorError) as exc:
            raise ModelError(f"{Path(parser_dir) / 'manifest.json'}: inconsistent parser "
                             f"({type(exc).__name__}: {exc})") from None
        parser.sha256 = manifest["files"][PARSER_WEIGHTS]
        return parser


def teacher_net(tflite_path, output_stride=8):
    """The ADE20K parser of a TFLite file as an RGB `DeepLabNet` (checksum of the file checked)."""
    import hashlib
    from pathlib import Path

    from deepcolor.features.semantic import ADE20K_MODEL_NAME, ADE20K_MODEL_SHA256

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
