"""A DeepLab layer spec written as an ONNX graph, in memory, without torch or the ``onnx`` package.

The scene parser's network is stored as a JSON layer list (``spec``, see
`deepcolor.features.deeplab.read_tflite`) and its weights (safetensors).
`deeplab_onnx` turns the two into the bytes of an ONNX model, which OpenCV's
dnn module reads from memory (`deepcolor.features.cvparser`): no second
weights file is stored and torch is not needed to run the parser.

The bytes are a protobuf message written here by hand: a few helpers for
the wire format (varints and length-delimited fields) and one function per
ONNX message used (ModelProto, GraphProto, NodeProto, AttributeProto,
TensorProto, ValueInfoProto), with the field numbers of ``onnx/onnx.proto``.
Every tensor's shape is fixed by the input size, so resizes get constant
output sizes.

References
----------
.. [1] ONNX, "onnx/onnx.proto" (IR version 8) and the operator documents of
   opset 13: https://github.com/onnx/onnx
.. [2] Protocol Buffers, "Encoding": https://protobuf.dev/programming-guides/encoding/
"""

import numpy as np

OPSET = 13
IR_VERSION = 8  # ONNX 1.10's IR; any reader of opset 13 reads it
LAYER_OPS = ("conv", "add", "pool", "resize", "concat")
ACTIVATIONS = ("none", "relu", "relu6")
INPUT_NAME = "t0"

# TensorProto.DataType
_FLOAT, _INT64 = 1, 7
# AttributeProto.AttributeType
_ATTR_INT, _ATTR_STRING, _ATTR_INTS = 2, 3, 7


# ---------------------------------------------------------------------------
# Protobuf wire format: a field is a key (field number << 3 | wire type) and a value.


def _varint(n):
    """Base-128 varint of an int; negative ints as their 64-bit two's complement (protobuf's int64)."""
    n &= (1 << 64) - 1
    out = bytearray()
    while True:
        low, n = n & 0x7F, n >> 7
        if n:
            out.append(low | 0x80)
        else:
            out.append(low)
            return bytes(out)


def _int_field(field, n):
    return _varint(field << 3) + _varint(n)  # wire type 0: varint


def _bytes_field(field, data):
    return _varint(field << 3 | 2) + _varint(len(data)) + data  # wire type 2: length-delimited


def _str_field(field, text):
    return _bytes_field(field, text.encode("utf-8"))


def _msg_field(field, parts):
    return _bytes_field(field, b"".join(parts))


# ---------------------------------------------------------------------------
# The ONNX messages (field numbers of onnx.proto).


def tensor_proto(name, array):
    """TensorProto of a float32 or int64 array: dims (1), data_type (2), name (8), raw_data (9, little-endian)."""
    array = np.asarray(array)
    kinds = {np.dtype(np.float32): (_FLOAT, "<f4"), np.dtype(np.int64): (_INT64, "<i8")}
    if array.dtype not in kinds:
        raise TypeError(f"tensor {name!r}: only float32 and int64 are written, got {array.dtype}")
    data_type, layout = kinds[array.dtype]
    return b"".join([*(_int_field(1, d) for d in array.shape), _int_field(2, data_type), _str_field(8, name),
                     _bytes_field(9, np.ascontiguousarray(array, layout).tobytes())])


def attribute_proto(name, value):
    """AttributeProto: name (1), then an int i (3), a str s (4) or ints (8), and its type (20)."""
    if isinstance(value, str):
        return _str_field(1, name) + _bytes_field(4, value.encode("utf-8")) + _int_field(20, _ATTR_STRING)
    if isinstance(value, (list, tuple)):
        return _str_field(1, name) + b"".join(_int_field(8, int(v)) for v in value) + _int_field(20, _ATTR_INTS)
    return _str_field(1, name) + _int_field(3, int(value)) + _int_field(20, _ATTR_INT)


def node_proto(op_type, inputs, outputs, name, **attrs):
    """NodeProto: input (1), output (2), name (3), op_type (4), attribute (5); an empty input name skips one."""
    return b"".join([*(_str_field(1, s) for s in inputs), *(_str_field(2, s) for s in outputs),
                     _str_field(3, name), _str_field(4, op_type),
                     *(_msg_field(5, [attribute_proto(k, v)]) for k, v in attrs.items())])


def value_info_proto(name, shape):
    """ValueInfoProto of a float tensor: name (1), type (2) = TypeProto.tensor_type (1) {elem_type 1, shape 2}."""
    dims = [_msg_field(1, [_int_field(1, d)]) for d in shape]  # TensorShapeProto.dim {dim_value 1}
    tensor_type = _int_field(1, _FLOAT) + _msg_field(2, dims)
    return _str_field(1, name) + _msg_field(2, [_msg_field(1, [tensor_type])])


def model_proto(nodes, initializers, inputs, outputs, name="graph", producer="deepcolor"):
    """ModelProto: ir_version (1), producer_name (2), graph (7), opset_import (8) of the default domain.

    The GraphProto: node (1), name (2), initializer (5), input (11), output (12).
    """
    graph = b"".join([*(_msg_field(1, [n]) for n in nodes), _str_field(2, name),
                      *(_msg_field(5, [t]) for t in initializers),
                      *(_msg_field(11, [v]) for v in inputs), *(_msg_field(12, [v]) for v in outputs)])
    opset = _str_field(1, "") + _int_field(2, OPSET)
    return b"".join([_int_field(1, IR_VERSION), _str_field(2, producer), _bytes_field(7, graph),
                     _msg_field(8, [opset])])


# ---------------------------------------------------------------------------
# The layer spec: shapes, checks, and the graph.


def _ints(layer, i, keys):
    """The positive ints `keys` of a layer."""
    out = []
    for key in keys:
        v = layer.get(key)
        if not isinstance(v, int) or isinstance(v, bool) or v < 1:
            raise ValueError(f"layer {i} ({layer['op']}): {key} must be a positive int, got {v!r}")
        out.append(v)
    return out


def _index(layer, i, key, n_tensors):
    j = layer.get(key)
    if not isinstance(j, int) or isinstance(j, bool) or not 0 <= j < n_tensors:
        raise ValueError(f"layer {i} ({layer.get('op')}): {key} must name an earlier tensor 0..{n_tensors - 1}, "
                         f"got {j!r}")
    return j


def tensor_shapes(spec, weights, input_size, in_channels=1):
    """The (channels, rows, cols) of every tensor of `spec` run on one `input_size` square image, checked.

    Tensor 0 is the input, tensor i + 1 the output of layer i (as in
    `deepcolor.features.deeplab.DeepLabNet`).

    Parameters
    ----------
    spec : list of dict
        The layers (a parser manifest's ``spec``).
    weights : dict of str -> ndarray
        ``convs.{i}.weight`` (cout, cin / groups, k, k) and ``convs.{i}.bias``
        (cout,) of every convolution i, nothing else.
    input_size : int
        Rows and columns of the input.
    in_channels : int
        Channels of the input (1 for grey: the first convolution's ``cin``
        is then that of the colour teacher, 3, and is not checked).

    Returns
    -------
    shapes : list of tuple of int
        ``len(spec) + 1`` shapes.

    Raises
    ------
    ValueError
        An unknown op or activation, an index to a tensor not yet computed,
        a convolution whose weights are missing or of the wrong shape,
        weights that no layer uses, or tensors whose shapes do not fit
        (an add of two shapes, a concatenation of two sizes).
    """
    if not isinstance(spec, (list, tuple)) or not spec:
        raise ValueError(f"spec must be a non-empty list of layers, got {type(spec).__name__}")
    shapes = [(in_channels, input_size, input_size)]
    used = set()
    for i, layer in enumerate(spec):
        op = layer.get("op") if isinstance(layer, dict) else None
        if op not in LAYER_OPS:
            raise ValueError(f"layer {i}: unknown op {op!r} (known: {', '.join(LAYER_OPS)})")
        if layer.get("act", "none") not in ACTIVATIONS:
            raise ValueError(f"layer {i} ({op}): unknown activation {layer['act']!r}")
        n = len(shapes)
        if op == "conv":
            c, h, w = shapes[_index(layer, i, "in", n)]
            k, s, d, g, cout = _ints(layer, i, ("k", "stride", "dilation", "groups", "cout"))
            if c % g or cout % g:
                raise ValueError(f"layer {i} (conv): groups={g} must divide its {c} input and {cout} output channels")
            if layer["in"] != 0 and layer.get("cin") != c:
                raise ValueError(f"layer {i} (conv): cin={layer.get('cin')!r} but its input has {c} channels")
            for key, shape in ((f"convs.{i}.weight", (cout, c // g, k, k)), (f"convs.{i}.bias", (cout,))):
                if key not in weights:
                    raise ValueError(f"layer {i} (conv): no weights {key}")
                if tuple(weights[key].shape) != shape:
                    raise ValueError(f"layer {i} (conv): {key} has shape {tuple(weights[key].shape)}, "
                                     f"the spec says {shape}")
                used.add(key)
            pad, span = d * (k - 1) // 2, d * (k - 1) + 1
            h, w = ((x + 2 * pad - span) // s + 1 for x in (h, w))
            if min(h, w) < 1:
                raise ValueError(f"layer {i} (conv): the input of {input_size} pixels is too small for it")
            shapes.append((cout, h, w))
        elif op == "add":
            a, b = (shapes[_index({"in": j, "op": op}, i, "in", n)] for j in _pair(layer, i))
            if a != b:
                raise ValueError(f"layer {i} (add): shapes {a} and {b} differ")
            shapes.append(a)
        elif op == "pool":
            shapes.append((shapes[_index(layer, i, "in", n)][0], 1, 1))
        elif op == "resize":
            c = shapes[_index(layer, i, "in", n)][0]
            shapes.append((c, *shapes[_index(layer, i, "like", n)][1:]))
        else:  # concat
            parts = [shapes[_index({"in": j, "op": op}, i, "in", n)] for j in _list(layer, i)]
            if len({p[1:] for p in parts}) != 1:
                raise ValueError(f"layer {i} (concat): sizes {[p[1:] for p in parts]} differ")
            shapes.append((sum(p[0] for p in parts), *parts[0][1:]))
    unused = sorted(set(weights) - used)
    if unused:
        raise ValueError(f"weights {', '.join(unused[:3])}{', ...' if len(unused) > 3 else ''} belong to no "
                         f"convolution of the spec")
    return shapes


def _list(layer, i):
    ins = layer.get("in")
    if not isinstance(ins, (list, tuple)) or not ins:
        raise ValueError(f"layer {i} ({layer['op']}): in must be a list of tensors, got {ins!r}")
    return ins


def _pair(layer, i):
    ins = _list(layer, i)
    if len(ins) != 2:
        raise ValueError(f"layer {i} (add): in must name 2 tensors, got {ins!r}")
    return ins


def _activation(act, x, out, name, nodes):
    """Nodes of the activation `act` from tensor `x` to `out` (Identity when there is none)."""
    if act == "relu":
        nodes.append(node_proto("Relu", [x], [out], name))
    elif act == "relu6":  # Clip's bounds are inputs since opset 11: two scalar initializers
        nodes.append(node_proto("Clip", [x, "zero", "six"], [out], name))
    else:
        nodes.append(node_proto("Identity", [x], [out], name))


def deeplab_onnx(spec, weights, input_size, in_channels=1):
    """The ONNX model bytes of a DeepLab `spec` run on a (1, in_channels, S, S) input, S = `input_size`.

    Parameters
    ----------
    spec, weights, input_size, in_channels
        As `tensor_shapes` (which checks them); the weights are written as float32.

    Returns
    -------
    model : bytes
        A serialised ONNX ModelProto (opset 13): one input ``t0`` of shape
        (1, in_channels, S, S), one output, the last layer's tensor, of shape
        (1, K, S', S'). Tensor i is named ``t{i}``; convolution i's weights
        keep their names (``convs.{i}.weight``, ``convs.{i}.bias``).

    Notes
    -----
    Ops: ``conv`` is Conv (symmetric padding d (k - 1) / 2) then Relu or
    Clip(0, 6); ``add`` is Add; ``pool`` is GlobalAveragePool; ``resize``
    is Resize (linear, align_corners) to the fixed size of tensor ``like``,
    or Expand of a 1 x 1 map, which bilinear interpolation from one pixel
    equals, or Identity at the same size; ``concat`` is Concat on channels.
    """
    shapes = tensor_shapes(spec, weights, input_size, in_channels)
    nodes = []
    inits = [tensor_proto("zero", np.float32(0.0)), tensor_proto("six", np.float32(6.0))]
    for i, layer in enumerate(spec):
        op, out, name = layer["op"], f"t{i + 1}", f"layer{i}"
        c, h, w = shapes[i + 1]
        if op == "conv":
            k, s, d, g = (layer[key] for key in ("k", "stride", "dilation", "groups"))
            pad = d * (k - 1) // 2
            wkey, bkey = f"convs.{i}.weight", f"convs.{i}.bias"
            inits += [tensor_proto(wkey, np.asarray(weights[wkey], np.float32)),
                      tensor_proto(bkey, np.asarray(weights[bkey], np.float32))]
            nodes.append(node_proto("Conv", [f"t{layer['in']}", wkey, bkey], [f"{out}_conv"], f"{name}_conv",
                                    kernel_shape=[k, k], strides=[s, s], dilations=[d, d], group=g,
                                    pads=[pad, pad, pad, pad]))
            _activation(layer.get("act", "none"), f"{out}_conv", out, name, nodes)
        elif op == "add":
            a, b = layer["in"]
            nodes.append(node_proto("Add", [f"t{a}", f"t{b}"], [f"{out}_add"], f"{name}_add"))
            _activation(layer.get("act", "none"), f"{out}_add", out, name, nodes)
        elif op == "pool":
            nodes.append(node_proto("GlobalAveragePool", [f"t{layer['in']}"], [out], name))
        elif op == "resize":
            src = layer["in"]
            if shapes[src][1:] == (h, w):
                nodes.append(node_proto("Identity", [f"t{src}"], [out], name))
            elif shapes[src][1:] == (1, 1):
                inits.append(tensor_proto(f"{name}_shape", np.array([1, c, h, w], np.int64)))
                nodes.append(node_proto("Expand", [f"t{src}", f"{name}_shape"], [out], name))
            else:
                inits.append(tensor_proto(f"{name}_sizes", np.array([1, c, h, w], np.int64)))
                nodes.append(node_proto("Resize", [f"t{src}", "", "", f"{name}_sizes"], [out], name,
                                        mode="linear", coordinate_transformation_mode="align_corners"))
        else:  # concat
            nodes.append(node_proto("Concat", [f"t{j}" for j in layer["in"]], [out], name, axis=1))
    inputs = [value_info_proto(INPUT_NAME, (1, *shapes[0]))]
    outputs = [value_info_proto(f"t{len(spec)}", (1, *shapes[-1]))]
    return model_proto(nodes, inits, inputs, outputs, name="deeplab")
