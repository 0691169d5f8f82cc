"""The ADE20K parser rebuilt in torch, the grey-image parser, its class sets and its distillation (issue 15)."""

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from deepcolor.distill import DistillConfig, Sample, distill, evaluate_parser, random_view  # noqa: E402
from deepcolor.features.deeplab import (DeepLabNet, grey_from_rgb, read_tflite,  # noqa: E402
                                        state_from_weights, with_output_stride)
from deepcolor.features.greyparser import GreyParser  # noqa: E402
from deepcolor.features.labelsets import (ADE20K_TO_COLOUR, CAMVID_CLASSES, CAMVID_TO_COLOUR,  # noqa: E402
                                          COLOUR_CLASSES, LABEL_SETS, MSRC_CLASSES, MSRC_TO_COLOUR,
                                          STANFORD_CLASSES, STANFORD_TO_COLOUR, class_matrix, labelled_pairs,
                                          map_labels)
from deepcolor.modelfiles import ModelError  # noqa: E402

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
TEACHER = DATA / "models" / "deeplabv3_mobilenetv2_ade20k.tflite"
HAS_TFLITE = importlib.util.find_spec("tflite") is not None and importlib.util.find_spec("ai_edge_litert") is not None


def tiny_spec():
    """A DeepLab-shaped graph of every op kind, small enough to train in a test: logits at a quarter size."""
    def conv(i, cin, cout, k=1, stride=1, dilation=1, groups=1, act="none", name=""):
        return {"op": "conv", "in": i, "cin": cin, "cout": cout, "k": k, "stride": stride, "dilation": dilation,
                "groups": groups, "act": act, "name": name}

    return [
        conv(0, 3, 8, 3, 2, act="relu6", name="stem"),  # t1: S/2
        conv(1, 8, 8, 3, 2, groups=8, act="relu6", name="expanded_conv_1/depthwise"),  # t2: S/4, low level
        conv(2, 8, 8, 3, 1, groups=8, act="relu6", name="MobilenetV2/expanded_conv_6/depthwise/b"),  # t3
        conv(3, 8, 8, 3, 1, dilation=2, groups=8, name="dilated"),  # t4
        {"op": "add", "in": [3, 4], "act": "relu"},  # t5
        {"op": "pool", "in": 5},  # t6
        conv(6, 8, 8, act="relu"),  # t7
        {"op": "resize", "in": 7, "like": 5},  # t8
        {"op": "concat", "in": [8, 5]},  # t9: 16 channels
        {"op": "resize", "in": 9, "like": 2},  # t10: back to S/4
        {"op": "concat", "in": [10, 2]},  # t11: 24 channels
        conv(11, 24, 151, name="logits"),  # t12
    ]


@pytest.fixture
def tiny_net():
    torch.manual_seed(0)
    return DeepLabNet(tiny_spec()).eval()


@pytest.fixture
def tiny_grey_parser(tiny_net):
    return GreyParser(grey_from_rgb(tiny_net), 33)


# --- DeepLabNet ----------------------------------------------------------------


@pytest.mark.parametrize("size", [33, 49, 65])
def test_deeplabnet_shape(tiny_net, size):
    out = tiny_net(torch.zeros(2, 3, size, size))
    assert out.shape == (2, 151, (size - 1) // 4 + 1, (size - 1) // 4 + 1)


def test_with_output_stride_unit():
    spec16 = with_output_stride(tiny_spec(), 16)
    assert spec16[2]["stride"] == 2 and spec16[3]["dilation"] == 1  # the block strides, dilations halve
    assert tiny_spec()[2]["stride"] == 1  # a copy: the input is not changed
    assert with_output_stride(tiny_spec(), 8) == tiny_spec()
    net = DeepLabNet(spec16)
    assert net(torch.zeros(1, 3, 33, 33)).shape == (1, 151, 9, 9)  # the decoder still answers at S/4


def test_with_output_stride_exception():
    with pytest.raises(ValueError, match="output_stride must be 8 or 16, got 32"):
        with_output_stride(tiny_spec(), 32)


def test_deeplabnet_exception_unknown_op():
    net = DeepLabNet(tiny_spec()[:1] + [{"op": "softmax", "in": 1}])
    with pytest.raises(ValueError, match="layer 1: unknown op 'softmax'"):
        net(torch.zeros(1, 3, 33, 33))


def test_grey_from_rgb_invariant(tiny_net, rng):
    # The grey network on Y equals the colour network on (Y, Y, Y): exact, not an approximation.
    grey = grey_from_rgb(tiny_net).eval()
    y = torch.from_numpy(rng.uniform(-1, 1, (1, 1, 41, 41)).astype(np.float32))
    with torch.no_grad():
        np.testing.assert_allclose(grey(y).numpy(), tiny_net(y.repeat(1, 3, 1, 1)).numpy(), rtol=1e-4, atol=1e-5)
    assert grey.in_channels == 1 and tiny_net.in_channels == 3


# --- GreyParser ------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_grey_parser_predict_proba_shape(tiny_grey_parser, rng, dtype):
    gray = rng.uniform(0, 1, (23, 37)).astype(dtype)
    prob = tiny_grey_parser.predict_proba(gray)
    assert prob.shape == (23, 37, len(COLOUR_CLASSES)) and prob.dtype == np.float32
    assert prob.min() >= 0
    np.testing.assert_allclose(prob.sum(axis=-1), 1.0, atol=1e-5)
    assert tiny_grey_parser.classes_ == COLOUR_CLASSES == tiny_grey_parser.class_names


def test_grey_parser_invariant_threads(rng):
    # The same floats whatever torch's thread count: features (and so a model trained on them) must not
    # depend on --jobs or on the machine's cores. The bundled parser, whose convolutions are big enough
    # to be split across threads; the caller's thread count is restored.
    from deepcolor.features import load_parser

    parser = load_parser(runtime="torch")
    gray = rng.random((61, 83)).astype(np.float32)
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        parser._memo = None
        two = parser.grid_proba(gray).copy()
        assert torch.get_num_threads() == 2
        torch.set_num_threads(1)
        parser._memo = None
        one = parser.grid_proba(gray)
    finally:
        torch.set_num_threads(before)
    np.testing.assert_array_equal(one, two)


def test_grey_parser_with_classes_unit(tiny_grey_parser, rng):
    # Another class set merges the same 151 probabilities: "sky" alone against the rest.
    gray = rng.uniform(0, 1, (30, 30)).astype(np.float32)
    sky_only = tiny_grey_parser.with_classes(("sky", "other"), {3: "sky"})
    full = tiny_grey_parser.predict_proba(gray)
    np.testing.assert_allclose(sky_only.predict_proba(gray)[..., 0], full[..., 0], atol=1e-5)


def test_grey_parser_exception(tiny_net):
    with pytest.raises(ValueError, match="takes 1 channel, got 3"):
        GreyParser(tiny_net, 33)
    with pytest.raises(ValueError, match="input_size must be an int >= 33, got 16"):
        GreyParser(grey_from_rgb(tiny_net), 16)
    with pytest.raises(ValueError, match="not in"):
        GreyParser(grey_from_rgb(tiny_net), 33, ("sky", "other"), {3: "skies"})


def test_grey_parser_save_load_roundtrip(tiny_grey_parser, tmp_path, rng):
    tiny_grey_parser.save(tmp_path / "p")
    loaded = GreyParser.load(tmp_path / "p")
    gray = rng.uniform(0, 1, (29, 31)).astype(np.float32)
    # float16 weights on disk: the probabilities move by float16 rounding only
    np.testing.assert_allclose(loaded.predict_proba(gray), tiny_grey_parser.predict_proba(gray), atol=2e-3)
    manifest = json.loads((tmp_path / "p" / "manifest.json").read_text())
    assert manifest["format_version"] == 2 and manifest["classes"] == list(COLOUR_CLASSES)
    assert loaded.sha256 == manifest["files"]["deeplab.safetensors"] == tiny_grey_parser.sha256
    with pytest.raises(FileExistsError, match="a parser is there already"):
        tiny_grey_parser.save(tmp_path / "p")


def test_grey_parser_save_interrupted_keeps_old_parser(tiny_grey_parser, tmp_path, monkeypatch):
    # Interrupted between the weights and the manifest, a save leaves the old parser whole
    # (the old in-place writer left new weights under the old manifest: a "corrupt" parser).
    import copy

    import deepcolor.modelfiles as modelfiles

    tiny_grey_parser.save(tmp_path / "p")
    before = {f.name: f.read_bytes() for f in (tmp_path / "p").iterdir()}
    net = copy.deepcopy(tiny_grey_parser.net)
    with torch.no_grad():
        for param in net.parameters():
            param.mul_(1.5)

    def disk_full(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(modelfiles, "atomic_write_text", disk_full)
    with pytest.raises(OSError, match="No space left"):
        GreyParser(net, 33).save(tmp_path / "p", overwrite=True)
    assert {f.name: f.read_bytes() for f in (tmp_path / "p").iterdir()} == before
    assert [f.name for f in tmp_path.iterdir()] == ["p"]
    GreyParser.load(tmp_path / "p")


def test_grey_parser_save_exception_other_files(tiny_grey_parser, tmp_path):
    (tmp_path / "p").mkdir()
    (tmp_path / "p" / "notes.txt").write_text("keep me")
    with pytest.raises(ModelError, match="holds files that are not a parser's"):
        tiny_grey_parser.save(tmp_path / "p", overwrite=True)
    assert [f.name for f in (tmp_path / "p").iterdir()] == ["notes.txt"]


def test_distill_run_exception_other_files(tmp_path):
    # Refused before the hours of training, not by the save after them.
    from deepcolor.distill import run

    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "notes.txt").write_text("keep me")
    with pytest.raises(ModelError, match="holds files that are not a parser's"):
        run(tmp_path / "missing.tflite", tmp_path / "data", tmp_path / "out", overwrite=True, quiet=True)


def test_grey_parser_load_exception_checksum(tiny_grey_parser, tmp_path):
    tiny_grey_parser.save(tmp_path / "p")
    weights = tmp_path / "p" / "deeplab.safetensors"
    weights.write_bytes(weights.read_bytes()[:-1] + b"\x00")
    with pytest.raises(ModelError, match="checksum mismatch"):
        GreyParser.load(tmp_path / "p")


def test_grey_parser_load_exception_inconsistent(tiny_grey_parser, tmp_path):
    tiny_grey_parser.save(tmp_path / "p")
    path = tmp_path / "p" / "manifest.json"
    manifest = json.loads(path.read_text())
    manifest["spec"][-1]["cout"] = 12  # the weights say 151
    path.write_text(json.dumps(manifest))
    with pytest.raises(ModelError, match="inconsistent parser"):
        GreyParser.load(tmp_path / "p")


def test_load_parser_dispatch(tiny_grey_parser, tiny_parser_dir, tmp_path):
    # A version-2 directory loads in OpenCV (a GreyParser when torch is asked for), the old student's
    # (version 1) still loads, in torch whatever the runtime.
    from deepcolor.features.cvparser import OpenCVGreyParser
    from deepcolor.features.parsers import load_parser
    from deepcolor.features.greyparser import StudentParser

    tiny_grey_parser.save(tmp_path / "p")
    assert isinstance(load_parser(str(tmp_path / "p")), OpenCVGreyParser)
    assert isinstance(load_parser(str(tmp_path / "p"), runtime="torch"), GreyParser)
    assert isinstance(load_parser(str(tiny_parser_dir)), StudentParser)
    assert isinstance(load_parser(str(tiny_parser_dir), runtime="torch"), StudentParser)
    coarse = load_parser(str(tmp_path / "p"), "coarse")  # merged by class name: none falls to "other" by mistake
    assert coarse.class_names == ("sky", "vegetation", "water", "ground", "person", "animal", "built", "other")
    np.testing.assert_array_equal(coarse.matrix[:, :-1].sum(axis=0) > 0, True)
    assert coarse.matrix[COLOUR_CLASSES.index("other")].argmax() == 7


# --- class sets ---------------------------------------------------------------------


def test_class_matrix_unit():
    mat = class_matrix(151, ADE20K_TO_COLOUR, COLOUR_CLASSES)
    assert mat.shape == (151, 12) and (mat.sum(axis=1) == 1).all()
    assert mat[3, COLOUR_CLASSES.index("sky")] == 1 and mat[57, COLOUR_CLASSES.index("other")] == 1  # pool table
    assert mat[110, COLOUR_CLASSES.index("water")] == 1  # swimming pool
    assert mat[0, -1] == 1  # background is "other"


def test_class_matrix_exception():
    with pytest.raises(ValueError, match=r"mapping names classes \['lava'\]"):
        class_matrix(151, {3: "lava"}, COLOUR_CLASSES)
    with pytest.raises(ValueError, match="need an 'other'"):
        class_matrix(151, {3: "sky"}, ("sky",))


def test_label_maps_invariant():
    # Every class of each labelled set is mapped or deliberately not scored; every colour class is reachable.
    for classes, mapping in ((MSRC_CLASSES, MSRC_TO_COLOUR), (STANFORD_CLASSES, STANFORD_TO_COLOUR),
                             (CAMVID_CLASSES, CAMVID_TO_COLOUR)):
        assert set(mapping.values()) <= set(COLOUR_CLASSES)
        assert max(mapping) < len(classes)
    assert set(MSRC_TO_COLOUR.values()) == set(COLOUR_CLASSES)
    assert set(ADE20K_TO_COLOUR.values()) == set(COLOUR_CLASSES) - {"other"}
    assert 7 not in STANFORD_TO_COLOUR and 10 not in CAMVID_TO_COLOUR  # foreground object, bicyclist


def test_map_labels_unit():
    labels = np.array([[0, 2, 7], [255, 3, 1]], np.uint8)
    out = map_labels(labels, *LABEL_SETS["stanford"][:1], COLOUR_CLASSES, LABEL_SETS["stanford"][1])
    sky, ground, grass, tree = (COLOUR_CLASSES.index(c) for c in ("sky", "ground", "grass", "tree"))
    np.testing.assert_array_equal(out, [[sky, ground, -1], [-1, grass, tree]])


def test_map_labels_exception():
    with pytest.raises(TypeError, match="labels must be uint8, got int32"):
        map_labels(np.zeros((2, 2), np.int32), MSRC_TO_COLOUR, COLOUR_CLASSES, 255)
    with pytest.raises(ValueError, match="class 'lava'"):
        map_labels(np.zeros((2, 2), np.uint8), {0: "lava"}, COLOUR_CLASSES, 255)


def _labelled_folder(root):
    from PIL import Image

    for split in ("train", "test"):
        (root / "camvid" / split / "images").mkdir(parents=True)
        (root / "camvid" / split / "labels").mkdir(parents=True)
        for i in range(3):
            Image.new("RGB", (8, 6)).save(root / "camvid" / split / "images" / f"f{i}.jpg")
            Image.new("L", (8, 6)).save(root / "camvid" / split / "labels" / f"f{i}.png")
    sb = root / "stanford_background"
    sb.mkdir()
    (sb / "train.txt").write_text("001\n002\n003\n")
    (sb / "msrc_overlap.txt").write_text("002.jpg 5_3_s.jpg\n")


def test_labelled_pairs_unit(tmp_path):
    _labelled_folder(tmp_path)
    pairs = labelled_pairs(tmp_path, "camvid", "test")
    assert [p.name for p, _ in pairs] == ["f0.jpg", "f1.jpg", "f2.jpg"]
    assert all(lab == tmp_path / "camvid" / "test" / "labels" / f"{p.stem}.png" for p, lab in pairs)
    # Stanford train leaves out the photos that are also MSRC-v2 photos
    assert [p.stem for p, _ in labelled_pairs(tmp_path, "stanford", "train")] == ["001", "003"]


def test_labelled_pairs_exception(tmp_path):
    _labelled_folder(tmp_path)
    with pytest.raises(ValueError, match="labelled set must be one of"):
        labelled_pairs(tmp_path, "pascal", "train")
    with pytest.raises(ValueError, match="camvid split must be"):
        labelled_pairs(tmp_path, "camvid", "eval")
    with pytest.raises(FileNotFoundError, match="CamVid images folder not found"):
        labelled_pairs(tmp_path, "camvid", "val")
    with pytest.raises(FileNotFoundError, match="MSRC-v2 images folder not found"):
        labelled_pairs(tmp_path, "msrc", "eval")


# --- distillation --------------------------------------------------------------------


def test_distill_config_exception():
    with pytest.raises(ValueError, match="input_size must be 16 n"):
        DistillConfig(input_size=256)
    with pytest.raises(ValueError, match="epochs must be a positive int, got 0"):
        DistillConfig(epochs=0)
    with pytest.raises(ValueError, match="output_stride must be 8 or 16"):
        DistillConfig(output_stride=4)
    with pytest.raises(ValueError, match="crop_min must be in"):
        DistillConfig(crop_min=0)


def test_random_view_shape(rng):
    sample = Sample("x", rng.integers(0, 256, (21, 34, 3), dtype=np.uint8),
                    rng.integers(-1, 12, (21, 34)).astype(np.int16))
    rgb, grey, labels = random_view(sample, 33, 9, rng)
    assert rgb.shape == (33, 33, 3) and grey.shape == (33, 33) and labels.shape == (9, 9)
    assert -1 <= rgb.min() and rgb.max() <= 1 and labels.dtype == np.int16
    assert random_view(Sample("y", sample.rgb), 33, 9, rng)[2] is None


def _scene(rng, h=36, w=44):
    """Sky (bright, top) over grass (dark, bottom): labelled in the colour classes."""
    split = int(rng.integers(h // 3, 2 * h // 3))
    rgb = np.zeros((h, w, 3), np.uint8)
    rgb[:split] = (120, 170, 240)
    rgb[split:] = (40, 110, 30)
    rgb = np.clip(rgb + rng.integers(-10, 10, rgb.shape), 0, 255).astype(np.uint8)
    labels = np.full((h, w), COLOUR_CLASSES.index("grass"), np.int16)
    labels[:split] = COLOUR_CLASSES.index("sky")
    return rgb, labels


def test_distill_learns_labels(tiny_net, rng, torch_one_thread):
    # The tiny network starts random; labelled sky-over-grass scenes teach it to tell the two apart in grey.
    train = [Sample(str(i), *_scene(rng)) for i in range(16)]
    val = [Sample(f"v{i}", *_scene(rng)) for i in range(4)]
    cfg = DistillConfig(input_size=33, epochs=20, batch_size=4, lr=1e-2, val_every=8, label_weight=5.0)
    torch.manual_seed(0)
    student = grey_from_rgb(DeepLabNet(tiny_spec()))
    before, _ = evaluate_parser(GreyParser(grey_from_rgb(DeepLabNet(tiny_spec())), 33), val)
    parser, info = distill(tiny_net, student, train, val, cfg, np.random.default_rng(0))
    assert info["val_pixel_accuracy"] == pytest.approx(evaluate_parser(parser, val)[0], abs=1e-4)
    assert info["val_pixel_accuracy"] > max(0.9, before)
    assert info["steps"] == 20 * 4 and len(info["history"]) == 1 + 10
    assert not any(p.requires_grad for p in tiny_net.parameters())  # the teacher is frozen


def test_distill_exception(tiny_net, rng):
    train = [Sample(str(i), *_scene(rng)) for i in range(3)]
    student = grey_from_rgb(DeepLabNet(tiny_spec()))
    cfg = DistillConfig(input_size=33, batch_size=4)
    with pytest.raises(ValueError, match="needs labelled validation photos"):
        distill(tiny_net, student, train, [Sample("v", train[0].rgb)], cfg, rng)
    with pytest.raises(ValueError, match="3 training photos, fewer than batch_size=4"):
        distill(tiny_net, student, train, train, cfg, rng)


# --- against the TFLite file (data folder) ------------------------------------------------


@pytest.mark.skipif(not HAS_TFLITE, reason="tflite and ai-edge-litert are not installed")
@pytest.mark.skipif(not TEACHER.is_file(), reason=f"{TEACHER} is not here (data folder)")
def test_read_tflite_unit(tiny_scene):
    # Golden values from TensorFlow Lite itself: the torch rebuild gives the interpreter's logits.
    import cv2

    from deepcolor.features.teacher import TFLiteParser

    spec, weights = read_tflite(TEACHER)
    assert sum(w.size for w in weights.values()) == 2_286_855  # 2.29 M weights
    net = DeepLabNet(spec)
    net.load_state_dict(state_from_weights(weights))
    rgb = cv2.resize(tiny_scene(40, 33, 1), (120, 90)).astype(np.float32) / 255
    ref = TFLiteParser(TEACHER, threads=1).raw_logits(rgb)  # (513, 513, 151)
    x = cv2.resize(rgb, (513, 513), interpolation=cv2.INTER_LINEAR) * 2 - 1
    with torch.no_grad():
        out = net(torch.from_numpy(x.transpose(2, 0, 1).copy())[None])
        out = torch.nn.functional.interpolate(out, size=(513, 513), mode="bilinear", align_corners=True)
    out = out[0].numpy().transpose(1, 2, 0)
    # The interpreter quantises activations on the fly (hybrid int8 kernels): close, not equal.
    assert np.abs(out - ref).max() < 1.0 < np.abs(ref).max()
    assert (out.argmax(-1) == ref.argmax(-1)).mean() > 0.97


@pytest.mark.skipif(not HAS_TFLITE, reason="tflite is not installed")
def test_read_tflite_exception(tmp_path):
    bad = tmp_path / "x.tflite"
    bad.write_bytes(b"\x00" * 64)
    with pytest.raises(ValueError, match="not a TensorFlow Lite model"):
        read_tflite(bad)


@pytest.mark.skipif(not (DATA / "stanford_background").is_dir(), reason="data folder is not here")
def test_bundled_parser_quality():
    # The bundled grey-image parser on 12 Stanford Background test photos in grey: it finds the scene's classes.
    from deepcolor.bench_parsing import _grey, score_split
    from deepcolor.features.parsers import default_parser_dir

    parser = GreyParser.load(default_parser_dir())
    pairs = labelled_pairs(DATA, "stanford", "test")[::12]
    scores = score_split(lambda rgb: parser.predict_proba(_grey(rgb)), pairs, "stanford", COLOUR_CLASSES)
    assert scores["pixel_accuracy"] > 0.7 and scores["mean_iou"] > 0.4


# --- the parsing bench's scoring ------------------------------------------------------------


def _fake_camvid_test(root, tiny_scene, label_shape=None):
    from PIL import Image

    (root / "camvid" / "test" / "images").mkdir(parents=True)
    (root / "camvid" / "test" / "labels").mkdir()
    Image.fromarray(tiny_scene(20, 30, 0)).save(root / "camvid" / "test" / "images" / "a.jpg")
    labels = np.zeros(label_shape or (20, 30), np.uint8)  # CamVid 0: sky
    labels[:, :10] = 11  # unlabelled
    Image.fromarray(labels).save(root / "camvid" / "test" / "labels" / "a.png")
    return labelled_pairs(root, "camvid", "test")


def test_score_split_unit(tmp_path, tiny_scene):
    from deepcolor.bench_parsing import score_split

    pairs = _fake_camvid_test(tmp_path, tiny_scene)
    onehot = np.eye(len(COLOUR_CLASSES), dtype=np.float32)
    always_sky = lambda rgb: onehot[np.full(rgb.shape[:2], COLOUR_CLASSES.index("sky"))]  # noqa: E731
    scores = score_split(always_sky, pairs, "camvid", COLOUR_CLASSES)
    assert scores == {"pixel_accuracy": 1.0, "mean_iou": 1.0, "n_images": 1}
    always_water = lambda rgb: onehot[np.full(rgb.shape[:2], COLOUR_CLASSES.index("water"))]  # noqa: E731
    assert score_split(always_water, pairs, "camvid", COLOUR_CLASSES)["pixel_accuracy"] == 0.0


def test_score_split_exception(tmp_path, tiny_scene):
    from deepcolor.bench_parsing import score_split

    pairs = _fake_camvid_test(tmp_path / "a", tiny_scene)
    pairs[0][1].unlink()
    with pytest.raises(ValueError, match="a.png: cannot read the labels of a.jpg"):
        score_split(lambda rgb: None, pairs, "camvid", COLOUR_CLASSES)
    pairs = _fake_camvid_test(tmp_path / "b", tiny_scene, label_shape=(21, 30))
    with pytest.raises(ValueError, match=r"labels \(21, 30\) do not match the photo \(20, 30\)"):
        score_split(lambda rgb: None, pairs, "camvid", COLOUR_CLASSES)


def test_msrc_split_unit(tmp_path):
    from deepcolor.features.labelsets import msrc_split

    for i in range(7):
        (tmp_path / f"{i}_s.jpg").write_bytes(b"x")
    train, ev = msrc_split(tmp_path)
    assert [p.name for p in ev] == ["0_s.jpg", "3_s.jpg", "6_s.jpg"]
    assert len(train) == 4 and not set(train) & set(ev)


def test_msrc_split_exception(tmp_path):
    from deepcolor.features.labelsets import msrc_split

    with pytest.raises(ValueError, match="no MSRC-v2 .jpg photos"):
        msrc_split(tmp_path)


def test_grey_parser_memo_invariant(tiny_grey_parser, rng):
    # The last image's grid is reused only for the very same image (content, shape and dtype).
    a = rng.uniform(0, 1, (20, 24)).astype(np.float32)
    b = a.copy()
    b[3, 4] = 1 - b[3, 4]
    pa = tiny_grey_parser.grid_proba(a)
    assert tiny_grey_parser.grid_proba(a.copy()) is pa
    assert tiny_grey_parser.grid_proba(b) is not pa
    np.testing.assert_array_equal(tiny_grey_parser.grid_proba(a.astype(np.float64)), pa)  # same image, recomputed


def test_load_parser_shares_the_network(tiny_grey_parser, tmp_path):
    from deepcolor.features.parsers import load_parser

    tiny_grey_parser.save(tmp_path / "p")
    assert load_parser(str(tmp_path / "p"), "coarse").parser is load_parser(str(tmp_path / "p"), "parser")


def test_grey_parser_load_exception_not_safetensors(tiny_grey_parser, tmp_path):
    # Weights whose checksum matches the manifest but that are not safetensors: refused, not a crash.
    import hashlib

    tiny_grey_parser.save(tmp_path / "p")
    (tmp_path / "p" / "deeplab.safetensors").write_bytes(b"not safetensors at all")
    path = tmp_path / "p" / "manifest.json"
    manifest = json.loads(path.read_text())
    manifest["files"]["deeplab.safetensors"] = hashlib.sha256(b"not safetensors at all").hexdigest()
    path.write_text(json.dumps(manifest))
    with pytest.raises(ModelError, match="inconsistent parser"):
        GreyParser.load(tmp_path / "p")


def test_grey_parser_load_exception_not_a_parser(tmp_path):
    with pytest.raises(ModelError, match="no such parser directory"):
        GreyParser.load(tmp_path / "nothing")
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "manifest.json").write_text(json.dumps({"format": "deepcolor-model", "format_version": 2,
                                                              "files": {}}))
    with pytest.raises(ModelError, match="not a deepcolor parser manifest"):
        GreyParser.load(tmp_path / "m")
