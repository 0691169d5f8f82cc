"""The grey-image parser without torch (issue 19): its ONNX graph written in memory and run by OpenCV.

features/onnxgraph.py writes a parser's layer spec and weights as ONNX bytes; features/cvparser.py runs
them with OpenCV's dnn module. The torch network (`DeepLabNet`, `GreyParser`) is the reference: tests
that compare with it skip where torch is not installed.
"""

import json
import subprocess
import sys
import textwrap

import cv2
import numpy as np
import pytest
from safetensors.numpy import save as st_save

from deepcolor.features.cvparser import (PARSER_FORMAT, OpenCVGreyParser, parser_input,
                                         read_parser_dir)
from deepcolor.features.labelsets import COLOUR_CLASSES
from deepcolor.features.onnxgraph import _varint, deeplab_onnx, tensor_proto, tensor_shapes
from deepcolor.features.parsers import default_parser_dir, load_parser
from deepcolor.modelfiles import ModelError, write_model_dir


def _conv(i, cin, cout, k=1, stride=1, dilation=1, groups=1, act="none"):
    return {"op": "conv", "in": i, "cin": cin, "cout": cout, "k": k, "stride": stride, "dilation": dilation,
            "groups": groups, "act": act, "name": f"conv{i}"}


def small_spec(n_out=151):
    """Every op of a DeepLab spec: strided, dilated and depthwise convolutions, relu and relu6, a residual
    add, global pooling broadcast back by a resize, a bilinear resize up, a resize to the same size,
    concatenations; logits at a quarter of the input."""
    return [
        _conv(0, 3, 8, 3, 2, act="relu6"),  # t1: S/2
        _conv(1, 8, 8, 3, 2, groups=8, act="relu6"),  # t2: S/4, the decoder's low level
        _conv(2, 8, 12, 1, act="relu"),  # t3
        _conv(3, 12, 12, 3, 2, groups=4, act="relu"),  # t4: S/8, grouped
        _conv(4, 12, 12, 3, 1, dilation=2, groups=12),  # t5: dilated depthwise
        {"op": "add", "in": [4, 5], "act": "relu6"},  # t6
        {"op": "pool", "in": 6},  # t7: (12, 1, 1)
        _conv(7, 12, 6, act="relu"),  # t8
        {"op": "resize", "in": 8, "like": 6},  # t9: 1 x 1 broadcast
        _conv(6, 12, 6, 3, 1, act="relu"),  # t10: a dense 3 x 3 convolution
        {"op": "concat", "in": [9, 10]},  # t11: 12 channels
        {"op": "resize", "in": 11, "like": 2},  # t12: bilinear, S/8 -> S/4
        {"op": "resize", "in": 2, "like": 3},  # t13: the same size
        {"op": "concat", "in": [12, 13]},  # t14: 20 channels
        _conv(14, 20, n_out),  # t15: logits
    ]


def random_weights(spec, rng, in_channels=1):
    """He-scaled random float32 weights of every convolution of `spec` (the values of a trained net's size)."""
    channels = [in_channels]
    weights = {}
    for i, layer in enumerate(spec):
        op = layer["op"]
        if op == "conv":
            cin = channels[layer["in"]] // layer["groups"]
            shape = (layer["cout"], cin, layer["k"], layer["k"])
            weights[f"convs.{i}.weight"] = rng.normal(0, np.sqrt(2 / (cin * layer["k"] ** 2)), shape).astype(np.float32)
            weights[f"convs.{i}.bias"] = rng.normal(0, 0.1, layer["cout"]).astype(np.float32)
            channels.append(layer["cout"])
        elif op == "add":
            channels.append(channels[layer["in"][0]])
        elif op in ("pool", "resize"):
            channels.append(channels[layer["in"]])
        else:
            channels.append(sum(channels[j] for j in layer["in"]))
    return weights


def _read_net(model):
    return cv2.dnn.readNetFromONNX(np.frombuffer(model, np.uint8), cv2.dnn.ENGINE_NEW)


def _forward(net, x):
    net.setInput(x)
    return net.forward().copy()


def _torch_forward(spec, weights, x, in_channels=1):
    torch = pytest.importorskip("torch")
    from deepcolor.features.deeplab import DeepLabNet

    net = DeepLabNet(spec, in_channels=in_channels).eval()
    net.load_state_dict({k: torch.from_numpy(v) for k, v in weights.items()}, strict=True)
    with torch.no_grad():
        return net(torch.from_numpy(x)).numpy()


def write_parser_dir(path, spec, weights, input_size=33, **extra):
    """A format-2 parser directory written without torch (float16 weights, as `GreyParser.save` writes)."""
    blob = st_save({k: v.astype(np.float16) for k, v in weights.items()}, metadata={"format": PARSER_FORMAT})
    manifest = {"format": PARSER_FORMAT, "format_version": 2, "versions": {}, "architecture": "deeplab",
                "input_size": input_size, "classes": list(COLOUR_CLASSES), "mapping": {"3": "sky", "5": "tree"},
                "spec": spec, "files": None, "info": {}, **extra}
    write_model_dir(path, manifest, {"deeplab.safetensors": blob}, "parser")
    return path


@pytest.fixture
def small_parser_dir(tmp_path, rng):
    spec = small_spec()
    return write_parser_dir(tmp_path / "p", spec, random_weights(spec, rng))


@pytest.fixture(scope="module")
def bundled():
    return OpenCVGreyParser.load(default_parser_dir())


def _grey_images():
    """Four grey photos of scikit-image's data, (rows, cols) in [0, 1]: larger and smaller than the input."""
    skimage_data = pytest.importorskip("skimage.data")
    from skimage.color import rgb2gray

    camera = skimage_data.camera().astype(np.float32) / 255  # (512, 512)
    return {"camera": camera, "astronaut": rgb2gray(skimage_data.astronaut()),  # (512, 512) float64
            "coffee": rgb2gray(skimage_data.coffee()).astype(np.float32),  # (400, 600)
            "camera_crop": camera[101:301:2, 57:467:3]}  # (100, 137): smaller than the input


def _edit_manifest(path, edit):
    manifest_path = path / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    edit(manifest)
    manifest_path.write_text(json.dumps(manifest))


# --- the protobuf writer ----------------------------------------------------------------------------


def test_varint_unit():
    # The examples of the protobuf encoding guide (protobuf.dev/programming-guides/encoding): 1 is 01,
    # 150 is 96 01; an int64 of -1 is ten bytes (its 64-bit two's complement).
    assert _varint(1) == b"\x01"
    assert _varint(150) == b"\x96\x01"
    assert _varint(0) == b"\x00"
    assert _varint(-1) == b"\xff" * 9 + b"\x01"


@pytest.mark.parametrize("array", [np.arange(24, dtype=np.float32).reshape(2, 3, 4) - 5.5,
                                   np.array([1, -2, 2**40, 7], np.int64)])
def test_tensor_proto_roundtrip(tmp_path, array):
    # OpenCV's own reader of a TensorProto file gives the array back.
    (tmp_path / "t.pb").write_bytes(tensor_proto("t", array))
    back = cv2.dnn.readTensorFromONNX(str(tmp_path / "t.pb"))
    assert back.dtype == array.dtype
    np.testing.assert_array_equal(back, array)


def test_tensor_proto_exception():
    with pytest.raises(TypeError, match="tensor 'x': only float32 and int64 are written, got float64"):
        tensor_proto("x", np.zeros(3))


# --- the graph: shapes, and equality with the torch network ---------------------------------------------


@pytest.mark.parametrize("size", [33, 38, 41])
def test_tensor_shapes_unit(rng, size):
    spec = small_spec()
    shapes = tensor_shapes(spec, random_weights(spec, rng), size)
    half = (size - 1) // 2 + 1
    quarter = (half - 1) // 2 + 1
    eighth = (quarter - 1) // 2 + 1
    assert shapes[0] == (1, size, size) and shapes[1] == (8, half, half)
    assert shapes[7] == (12, 1, 1) and shapes[9] == (6, eighth, eighth)  # pooled, then broadcast back
    assert shapes[12] == (12, quarter, quarter) and shapes[-1] == (151, quarter, quarter)


@pytest.mark.parametrize("size", [33, 38, 41])
def test_deeplab_onnx_unit(rng, size):
    # OpenCV running the ONNX graph gives the torch network's logits to float32 rounding, at odd and
    # even sizes (symmetric padding, strides that drop a row).
    spec = small_spec()
    weights = random_weights(spec, rng)
    x = rng.uniform(-1, 1, (1, 1, size, size)).astype(np.float32)
    out = _forward(_read_net(deeplab_onnx(spec, weights, size)), x)
    ref = _torch_forward(spec, weights, x)
    assert out.shape == ref.shape == (1, 151, *tensor_shapes(spec, weights, size)[-1][1:])
    np.testing.assert_allclose(out, ref, rtol=0, atol=1e-5 * np.abs(ref).max())


def test_deeplab_onnx_unit_colour(rng):
    # A 3-channel input (the colour teacher's) is written as well.
    spec = small_spec(n_out=5)
    weights = random_weights(spec, rng, in_channels=3)
    x = rng.uniform(-1, 1, (1, 3, 33, 33)).astype(np.float32)
    out = _forward(_read_net(deeplab_onnx(spec, weights, 33, in_channels=3)), x)
    ref = _torch_forward(spec, weights, x, in_channels=3)
    np.testing.assert_allclose(out, ref, rtol=0, atol=1e-5 * np.abs(ref).max())


def test_deeplab_onnx_invariant_threads(rng):
    # OpenCV's result does not depend on its thread count (each output is summed by one thread).
    spec = small_spec()
    weights = random_weights(spec, rng)
    net = _read_net(deeplab_onnx(spec, weights, 65))
    x = rng.uniform(-1, 1, (1, 1, 65, 65)).astype(np.float32)
    before = cv2.getNumThreads()
    try:
        outs = []
        for threads in (1, 2, 4):
            cv2.setNumThreads(threads)
            outs.append(_forward(net, x))
    finally:
        cv2.setNumThreads(before)
    np.testing.assert_array_equal(outs[0], outs[1])
    np.testing.assert_array_equal(outs[0], outs[2])


def _spec_with(i, **change):
    spec = small_spec()
    spec[i] = {**spec[i], **change}
    return spec


@pytest.mark.parametrize("spec, message", [
    ([], "spec must be a non-empty list of layers, got list"),
    (_spec_with(1, op="softmax"), "layer 1: unknown op 'softmax'"),
    (_spec_with(5, act="gelu"), r"layer 5 \(add\): unknown activation 'gelu'"),
    (_spec_with(2, **{"in": 5}), r"layer 2 \(conv\): in must name an earlier tensor 0..2, got 5"),
    (_spec_with(11, like=-1), r"layer 11 \(resize\): like must name an earlier tensor 0..11, got -1"),
    (_spec_with(2, cin=9), r"layer 2 \(conv\): cin=9 but its input has 8 channels"),
    (_spec_with(2, k=0), r"layer 2 \(conv\): k must be a positive int, got 0"),
    (_spec_with(3, groups=5), r"layer 3 \(conv\): groups=5 must divide its 12 input and 12 output channels"),
    (_spec_with(5, **{"in": [4, 3]}), r"layer 5 \(add\): shapes \(12, 5, 5\) and \(12, 9, 9\) differ"),
    (_spec_with(5, **{"in": [4, 5, 5]}), r"layer 5 \(add\): in must name 2 tensors, got \[4, 5, 5\]"),
    (_spec_with(10, **{"in": 9}), r"layer 10 \(concat\): in must be a list of tensors, got 9"),
    (_spec_with(13, **{"in": [12, 11]}), r"layer 13 \(concat\): sizes \[\(9, 9\), \(5, 5\)\] differ"),
])
def test_tensor_shapes_exception(rng, spec, message):
    weights = random_weights(small_spec(), rng)
    with pytest.raises(ValueError, match=message):
        tensor_shapes(spec, weights, 33)


def test_tensor_shapes_exception_weights(rng):
    spec = small_spec()
    weights = random_weights(spec, rng)
    with pytest.raises(ValueError, match=r"layer 2 \(conv\): convs.2.weight has shape \(12, 8, 1, 1\), "
                                         r"the spec says \(10, 8, 1, 1\)"):
        tensor_shapes(_spec_with(2, cout=10), weights, 33)
    with pytest.raises(ValueError, match=r"layer 14 \(conv\): no weights convs.14.bias"):
        tensor_shapes(spec, {k: v for k, v in weights.items() if k != "convs.14.bias"}, 33)
    with pytest.raises(ValueError, match="weights convs.99.weight belong to no convolution of the spec"):
        tensor_shapes(spec, {**weights, "convs.99.weight": np.zeros(1, np.float32)}, 33)
    wide = [_conv(0, 3, 8, 9, dilation=4)]  # spans 33 pixels, padded by 16 on each side
    with pytest.raises(ValueError, match=r"layer 0 \(conv\): the input of 0 pixels is too small for it"):
        tensor_shapes(wide, random_weights(wide, rng), 0)


# --- the parser -----------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_cvparser_predict_proba_shape(small_parser_dir, rng, dtype):
    parser = OpenCVGreyParser.load(small_parser_dir)
    gray = rng.uniform(0, 1, (23, 37)).astype(dtype)
    prob = parser.predict_proba(gray)
    assert prob.shape == (23, 37, len(COLOUR_CLASSES)) and prob.dtype == np.float32
    assert prob.min() >= 0
    np.testing.assert_allclose(prob.sum(axis=-1), 1.0, atol=1e-5)
    assert parser.classes_ == parser.class_names == COLOUR_CLASSES
    assert parser.grid_proba(gray).shape == (9, 9, len(COLOUR_CLASSES))
    assert parser.input_size == 33 and parser.info == {}


def test_cvparser_equals_torch_parser(small_parser_dir, rng):
    # The same directory in torch and in OpenCV: the same probabilities to float32 rounding, the same sha256.
    pytest.importorskip("torch")
    from deepcolor.features.greyparser import GreyParser

    cv, pt = OpenCVGreyParser.load(small_parser_dir), GreyParser.load(small_parser_dir)
    assert cv.sha256 == pt.sha256 is not None
    for shape in [(13, 9), (61, 83)]:
        gray = rng.uniform(0, 1, shape)
        np.testing.assert_allclose(cv.predict_proba(gray), pt.predict_proba(gray), rtol=0, atol=1e-5)


def test_cvparser_with_classes_unit(small_parser_dir, rng):
    # Another class set merges the same 151 probabilities on the same network: "sky" alone against the rest.
    parser = OpenCVGreyParser.load(small_parser_dir)
    gray = rng.uniform(0, 1, (30, 30)).astype(np.float32)
    sky_only = parser.with_classes(("sky", "other"), {3: "sky"})
    assert sky_only.net is parser.net and sky_only.sha256 == parser.sha256
    assert sky_only.classes_ == ("sky", "other") and parser.classes_ == COLOUR_CLASSES
    full = parser.predict_proba(gray)
    np.testing.assert_allclose(sky_only.predict_proba(gray)[..., 0], full[..., 0], atol=1e-6)


def test_cvparser_memo_invariant(small_parser_dir, rng):
    # The last image's grid is reused only for the very same image (content, shape and dtype).
    parser = OpenCVGreyParser.load(small_parser_dir)
    a = rng.uniform(0, 1, (20, 24)).astype(np.float32)
    b = a.copy()
    b[3, 4] = 1 - b[3, 4]
    pa = parser.grid_proba(a)
    assert parser.grid_proba(a.copy()) is pa
    assert parser.grid_proba(b) is not pa
    np.testing.assert_array_equal(parser.grid_proba(a.astype(np.float64)), pa)  # same image, recomputed


def test_cvparser_grid_logits_not_overwritten(small_parser_dir, rng):
    # The net writes its output in place; what it gave before stays as it was.
    parser = OpenCVGreyParser.load(small_parser_dir)
    first = parser.grid_logits(rng.uniform(0, 1, (20, 24)))
    kept = first.copy()
    parser.grid_logits(rng.uniform(0, 1, (20, 24)))
    np.testing.assert_array_equal(first, kept)


def test_parser_input_unit():
    # Stretched to the input size (area average when larger, bilinear when smaller), scaled to [-1, 1].
    gray = np.linspace(0, 1, 66 * 70).reshape(66, 70)
    x = parser_input(gray, 33)
    assert x.shape == (33, 33) and x.dtype == np.float32
    np.testing.assert_allclose(x, cv2.resize(gray.astype(np.float32), (33, 33), interpolation=cv2.INTER_AREA) * 2 - 1)
    small = gray[:20, :40]
    np.testing.assert_allclose(parser_input(small, 33),
                               cv2.resize(small.astype(np.float32), (33, 33), interpolation=cv2.INTER_LINEAR) * 2 - 1)


def test_cvparser_exception(small_parser_dir, rng):
    spec = small_spec()
    weights = random_weights(spec, rng)
    with pytest.raises(ValueError, match="input_size must be an int >= 33, got 16"):
        OpenCVGreyParser(spec, weights, 16)
    with pytest.raises(ValueError, match="not in"):
        OpenCVGreyParser(spec, weights, 33, ("sky", "other"), {3: "skies"})
    spec12 = small_spec(n_out=12)
    with pytest.raises(ValueError, match="the network gives 12 logits, ADE20K's 151 expected"):
        OpenCVGreyParser(spec12, random_weights(spec12, rng), 33)
    parser = OpenCVGreyParser.load(small_parser_dir)
    with pytest.raises(ValueError, match=r"gray must be a 2-D \(H, W\) luminance image, got shape \(4, 5, 3\)"):
        parser.predict_proba(np.zeros((4, 5, 3)))
    with pytest.raises(ValueError, match=r"gray values must lie in \[0, 1\]"):
        parser.grid_logits(np.full((4, 5), 2.0))


# --- loading ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("edit, message", [
    (lambda m: m["spec"].append({"op": "softmax", "in": 15}), "layer 15: unknown op 'softmax'"),
    (lambda m: m["spec"][2].update(cout=10), r"convs.2.weight has shape \(12, 8, 1, 1\), the spec says"),
    (lambda m: m["spec"].pop(), r"weights convs.14.bias, convs.14.weight belong to no convolution"),
    (lambda m: m.pop("spec"), "KeyError: 'spec'"),
    (lambda m: m.update(input_size="big"), "ValueError: invalid literal"),
    (lambda m: m.update(mapping={"3": "skies"}), r"mapping names classes \['skies'\] that are not in"),
])
def test_cvparser_load_exception_inconsistent(small_parser_dir, edit, message):
    # A manifest its weights do not fit: refused, naming the manifest, whatever the runtime would be.
    _edit_manifest(small_parser_dir, edit)
    with pytest.raises(ModelError, match=f"{small_parser_dir / 'manifest.json'}: inconsistent parser .*{message}"):
        OpenCVGreyParser.load(small_parser_dir)


def test_cvparser_load_exception_files(small_parser_dir, tmp_path):
    import hashlib

    weights = small_parser_dir / "deeplab.safetensors"
    blob = weights.read_bytes()
    weights.write_bytes(blob[:-1] + b"\x00")
    with pytest.raises(ModelError, match="checksum mismatch"):
        OpenCVGreyParser.load(small_parser_dir)
    weights.write_bytes(b"not safetensors at all")
    _edit_manifest(small_parser_dir, lambda m: m["files"].update(
        {"deeplab.safetensors": hashlib.sha256(b"not safetensors at all").hexdigest()}))
    with pytest.raises(ModelError, match=f"{weights}: inconsistent parser, its weights are not safetensors"):
        OpenCVGreyParser.load(small_parser_dir)
    weights.rename(small_parser_dir / "other.safetensors")
    _edit_manifest(small_parser_dir,
                   lambda m: m.update(files={"other.safetensors": m["files"].pop("deeplab.safetensors")}))
    with pytest.raises(ModelError, match="inconsistent parser, its files do not list deeplab.safetensors"):
        read_parser_dir(small_parser_dir)
    with pytest.raises(ModelError, match="no such parser directory"):
        OpenCVGreyParser.load(tmp_path / "nothing")
    with pytest.raises(ModelError, match="parser format version 1, this deepcolor reads version 2"):
        OpenCVGreyParser.load(default_parser_dir().parent / "parser-v1")


def test_load_parser_runtime(small_parser_dir):
    load_parser.cache_clear()
    parser = load_parser(str(small_parser_dir))
    assert isinstance(parser, OpenCVGreyParser)
    assert load_parser(str(small_parser_dir), "coarse").parser is parser  # one network for every merge
    with pytest.raises(ValueError, match=r"runtime must be one of \['opencv', 'torch'\], got 'onnx'"):
        load_parser(str(small_parser_dir), runtime="onnx")
    load_parser.cache_clear()


def test_parser_runtime_block(small_parser_dir, monkeypatch):
    """`parser_runtime` sets what load_parser runs with inside it; training references take torch's."""
    from deepcolor import extract
    from deepcolor.features.greyparser import GreyParser
    from deepcolor.features.parsers import parser_runtime

    load_parser.cache_clear()
    with parser_runtime("torch"):
        assert isinstance(load_parser(str(small_parser_dir)), GreyParser)
        assert isinstance(load_parser(str(small_parser_dir), runtime="opencv"), OpenCVGreyParser)  # told
    assert isinstance(load_parser(str(small_parser_dir)), OpenCVGreyParser)  # as before the block
    with pytest.raises(ValueError, match=r"runtime must be one of \['opencv', 'torch'\], got 'tf'"):
        with parser_runtime("tf"):
            pass
    # another thread inside or leaving its own block does not change this thread's runtime
    import threading

    inside, other = threading.Event(), []
    release = threading.Event()

    def worker():
        with parser_runtime("torch"):
            inside.set()
            release.wait(5)
        other.append(type(load_parser(str(small_parser_dir))))

    thread = threading.Thread(target=worker)
    thread.start()
    inside.wait(5)
    assert isinstance(load_parser(str(small_parser_dir)), OpenCVGreyParser)
    with parser_runtime("torch"):
        release.set()
        thread.join(5)
        assert isinstance(load_parser(str(small_parser_dir)), GreyParser)
    assert other == [OpenCVGreyParser]
    seen = []
    monkeypatch.setattr(extract, "_extract", lambda *args: seen.append(type(load_parser(str(small_parser_dir)))))
    extract._process("ref.png", "0" * 64, "out", None)
    assert seen == [GreyParser]
    load_parser.cache_clear()


# --- the bundled parser -----------------------------------------------------------------------------


def test_bundled_cvparser_equals_torch(bundled):
    # The bundled parser in OpenCV and in torch on four grey photos: the same probabilities to 1e-4
    # (measured: 4e-6; logits 2e-5 apart out of 17), the same sha256 (the weights file a model records).
    pytest.importorskip("torch")
    from deepcolor.features.greyparser import GreyParser
    from deepcolor.features.parsers import parser_sha256

    torch_parser = GreyParser.load(default_parser_dir())
    assert bundled.sha256 == torch_parser.sha256 == parser_sha256()
    for name, gray in _grey_images().items():
        logits, ref_logits = bundled.grid_logits(gray), torch_parser.grid_logits(gray).numpy()
        np.testing.assert_allclose(logits, ref_logits, rtol=0, atol=1e-5 * np.abs(ref_logits).max(), err_msg=name)
        np.testing.assert_allclose(bundled.predict_proba(gray), torch_parser.predict_proba(gray), rtol=0, atol=1e-4,
                                   err_msg=name)


def test_bundled_cvparser_invariant_threads(bundled, rng):
    # The same floats whatever OpenCV's thread count: features (and so a model trained on them) must not
    # depend on --jobs or on the machine's cores; the caller's thread count is restored.
    gray = rng.random((61, 83)).astype(np.float32)
    before = cv2.getNumThreads()
    try:
        outs = []
        for threads in (1, 2, 3):
            cv2.setNumThreads(threads)
            outs.append(bundled.grid_logits(gray))
            assert cv2.getNumThreads() == threads
    finally:
        cv2.setNumThreads(before)
    np.testing.assert_array_equal(outs[0], outs[1])
    np.testing.assert_array_equal(outs[0], outs[2])


def test_bundled_cvparser_without_torch():
    # Loading and running the bundled parser (as the semantic feature and histogram do) imports no torch.
    code = textwrap.dedent("""
        import sys
        import numpy as np
        from deepcolor.features import compute_features, load_parser
        parser = load_parser("default", "coarse")
        prob = parser.predict_proba(np.linspace(0, 1, 41 * 53).reshape(41, 53))
        assert prob.shape == (41, 53, 8), prob.shape
        print(type(parser.parser).__name__, "torch" in sys.modules)
    """)
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["OpenCVGreyParser", "False"]
