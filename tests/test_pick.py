"""Tests for `deepcolor pick` (issue 17): references chosen from a pool by likeness to grey targets.

Tiny synthetic scenes (tests/conftest.py): a target is the grey version of a
pool scene, so the scene itself is its nearest pool photo by any descriptor
of the luminance.
"""

import json
import logging
import os

import numpy as np
import pytest
from PIL import Image

from deepcolor import pick as dpick
from deepcolor.color import rgb_to_gray_u8
from deepcolor.features.config import FeatureConfig
from deepcolor.pick import (LIST, RECORD, REFERENCES, DescriptorCache, describe_images, descriptor_key,
                            descriptor_matrix, pick_references, rank_pool, write_pick)

CFG = FeatureConfig(working_size=32)


@pytest.fixture(autouse=True)
def _one_thread(torch_one_thread):
    """torch on one thread (the parser behind the semantic descriptors)."""


@pytest.fixture
def tree(tmp_path, tiny_refs, tiny_scene):
    """pool/: the six tiny scenes, a grey and a near-grey photo, a copy of scene 1; targets/: scenes 2 and 4 in grey."""
    pool = tmp_path / "pool"
    tiny_refs(pool)
    Image.fromarray(rgb_to_gray_u8(tiny_scene(40, 33, 0))).save(pool / "grey.png")
    flat = np.full((30, 31, 3), (120, 118, 121), np.uint8)
    flat[:, :15] += 1
    Image.fromarray(flat).save(pool / "near-grey.png")
    (pool / "sub").mkdir()
    (pool / "sub" / "copy-of-r1.png").write_bytes((pool / "r1.png").read_bytes())
    targets = tmp_path / "targets"
    targets.mkdir()
    for seed in (2, 4):
        rgb = np.asarray(Image.open(pool / f"r{seed}.png"))
        Image.fromarray(rgb_to_gray_u8(rgb)).save(targets / f"t{seed}.png")
    return tmp_path


# --- rank_pool ----------------------------------------------------------------

POOL = np.array([[0.0, 0.0], [1.0, 0.0], [0.0, 3.0], [5.0, 5.0], [0.9, 0.1]])


def test_rank_pool_nearest_unit():
    # targets at (0, 0) and (0, 2.5): distances to the nearest target 0, 1, 0.5, 5.59, 0.906
    order, dist = rank_pool([[0.0, 0.0], [0.0, 2.5]], POOL, 3, "nearest")
    assert order.tolist() == [0, 2, 4]
    np.testing.assert_allclose(dist, [0.0, 0.5, np.hypot(0.9, 0.1)])


def test_rank_pool_mean_unit():
    # the targets' mean is (0, 1.25): distances 1.25, 1.60, 1.75, 6.34, 1.43
    order, dist = rank_pool([[0.0, 0.0], [0.0, 2.5]], POOL, 2, "mean")
    assert order.tolist() == [0, 4]
    np.testing.assert_allclose(dist, [1.25, np.hypot(0.9, 1.15)])


def test_rank_pool_each_takes_turns():
    # target A at (1, 0) takes 1, then B at (5, 4) takes 3, then A its next nearest, 4
    order, _ = rank_pool([[1.0, 0.0], [5.0, 4.0]], POOL, 3, "each")
    assert order.tolist() == [1, 3, 4]


@pytest.mark.parametrize("rule", dpick.PICK_RULES)
def test_rank_pool_shape_no_repeats(rule, rng):
    order, dist = rank_pool(rng.normal(size=(4, 6)), rng.normal(size=(30, 6)), 12, rule)
    assert order.shape == dist.shape == (12,)
    assert len(set(order.tolist())) == 12


def test_rank_pool_more_than_pool():
    order, _ = rank_pool([[0.0, 0.0]], POOL, 50)
    assert sorted(order.tolist()) == list(range(len(POOL)))


@pytest.mark.parametrize("kwargs, message", [
    ({"rule": "median"}, "rule must be one of"),
    ({"n": 0}, "n must be a positive int, got 0"),
    ({"targets": np.zeros((1, 3))}, "descriptors of one length"),
])
def test_rank_pool_exception(kwargs, message):
    args = {"targets": [[0.0, 0.0]], "pool": POOL, "n": 2, **kwargs}
    with pytest.raises(ValueError, match=message):
        rank_pool(**args)


def test_descriptor_matrix_exception():
    with pytest.raises(ValueError, match="descriptor must be one of .* got 'colour'"):
        descriptor_matrix({}, "colour")


# --- describing images and the cache ------------------------------------------------------

def test_describe_images_shape_dtype(tree):
    paths = sorted((tree / "pool").glob("r*.png"))
    found = describe_images(paths, CFG, quiet=True)
    n = len(paths)
    assert found["paths"] == paths and len(found["sha256"]) == n
    assert found["gist"].shape == (n, 288) and found["gist"].dtype == np.float32
    k = found["histogram"].shape[1]
    assert found["semantic"].shape == (n, 5 * k)
    np.testing.assert_allclose(found["histogram"].sum(axis=1), 1.0, rtol=1e-5)
    assert (found["spread"] > 0.05).all()


def test_describe_images_grey_equals_its_colour_luminance(tree):
    """A grey target and the colour photo it came from get the same descriptors (8-bit rounding apart)."""
    found = describe_images([tree / "targets" / "t2.png", tree / "pool" / "r2.png"], CFG, quiet=True)
    np.testing.assert_allclose(found["gist"][0], found["gist"][1], atol=0.02)
    assert found["spread"][0] == 0.0


def test_describe_images_cache_reused(tree, monkeypatch):
    paths = sorted((tree / "pool").glob("r*.png"))
    first = describe_images(paths, CFG, cache_dir=tree / "cache", quiet=True)
    assert first["cached"] == 0

    def fail(*args):
        raise AssertionError("computed again")

    monkeypatch.setattr(dpick, "_describe", fail)
    second = describe_images(paths, CFG, cache_dir=tree / "cache", quiet=True)
    assert second["cached"] == len(paths)
    for key in ("gist", "semantic", "histogram", "spread"):
        np.testing.assert_array_equal(first[key], second[key])


def test_describe_images_cache_keyed_by_content(tree, tiny_scene):
    paths = sorted((tree / "pool").glob("r*.png"))
    describe_images(paths, CFG, cache_dir=tree / "cache", quiet=True)
    Image.fromarray(tiny_scene(40, 33, 99)).save(paths[0])  # same name, new content
    again = describe_images(paths, CFG, cache_dir=tree / "cache", quiet=True)
    assert again["cached"] == len(paths) - 1


def test_descriptor_key_follows_settings():
    assert descriptor_key(CFG) == descriptor_key(FeatureConfig(working_size=32, pixels_per_image=9))
    assert descriptor_key(CFG) != descriptor_key(FeatureConfig(working_size=64))


def test_descriptor_cache_corrupt_recomputed(tree, caplog):
    paths = sorted((tree / "pool").glob("r*.png"))
    cache = tree / "cache"
    cache.mkdir()
    (cache / f"descriptors-{descriptor_key(CFG)}.npz").write_bytes(b"not a zip")
    with caplog.at_level(logging.WARNING):
        found = describe_images(paths, CFG, cache_dir=cache, quiet=True)
    assert "unreadable descriptor cache" in caplog.text and "descriptors-" in caplog.text
    assert found["cached"] == 0 and len(found["paths"]) == len(paths)
    assert len(DescriptorCache(cache, descriptor_key(CFG)).entries) == len(paths)


def test_describe_images_bad_file_named(tree):
    bad = tree / "pool" / "broken.jpg"
    bad.write_bytes(b"\xff\xd8 not really")
    found = describe_images([tree / "pool" / "r0.png", bad], CFG, quiet=True)
    assert found["paths"] == [tree / "pool" / "r0.png"]
    assert len(found["failed"]) == 1 and "broken.jpg" in found["failed"][0]


# --- pick_references and write_pick ------------------------------------------------------

@pytest.mark.parametrize("descriptor", dpick.PICK_DESCRIPTORS)
def test_pick_references_finds_the_targets_scenes(tree, descriptor):
    result = pick_references([tree / "targets"], [tree / "pool"], 2, CFG, descriptor, "each", quiet=True)
    assert sorted(p.name for p, _ in result["picked"]) == ["r2.png", "r4.png"]
    assert max(d for _, d in result["picked"]) < 0.05


def test_pick_references_leaves_out_grey_and_copies(tree):
    result = pick_references([tree / "targets"], [tree / "pool"], 50, CFG, quiet=True)
    names = sorted(p.name for p, _ in result["picked"])
    assert names == [f"r{s}.png" for s in range(6)]
    c = result["counts"]
    assert (c["pool"], c["candidates"], c["grey"], c["duplicate"], c["targets"]) == (9, 6, 2, 1, 2)


def test_pick_references_exclude(tree):
    result = pick_references([tree / "targets"], [tree / "pool"], 50, CFG, quiet=True,
                             exclude=[tree / "pool" / "r2.png"])
    assert "r2.png" not in {p.name for p, _ in result["picked"]}


@pytest.mark.parametrize("which, message", [("targets", "no target images found in"),
                                            ("pool", "no pool images found in")])
def test_pick_references_exception_empty(tree, which, message):
    empty = tree / "empty"
    empty.mkdir()
    args = {"targets": [tree / "targets"], "pool": [tree / "pool"], which: [empty]}
    with pytest.raises(ValueError, match=message):
        pick_references(args["targets"], args["pool"], 5, CFG, quiet=True)


def test_pick_references_exception_missing_folder(tree):
    with pytest.raises(ValueError, match=r"pool .*nowhere.*no such file or folder"):
        pick_references([tree / "targets"], [tree / "nowhere"], 5, CFG, quiet=True)


def test_pick_references_exception_no_colour(tree):
    with pytest.raises(ValueError, match=r"no colour photo in the pool .*2 grey or near-grey"):
        pick_references([tree / "targets"], [tree / "pool" / "grey.png", tree / "pool" / "near-grey.png"], 5,
                        CFG, quiet=True)


def test_write_pick_links_list_record(tree):
    result = pick_references([tree / "targets"], [tree / "pool"], 3, CFG, quiet=True)
    links = write_pick(tree / "out", result)
    names = sorted(os.listdir(links))
    assert [n[:4] for n in names] == ["001-", "002-", "003-"]
    assert all((links / n).is_symlink() and (links / n).resolve() == p.resolve()
               for n, (p, _) in zip(names, result["picked"]))
    listed = (tree / "out" / LIST).read_text().splitlines()
    assert listed == [str(p.resolve()) for p, _ in result["picked"]]
    record = json.loads((tree / "out" / RECORD).read_text())
    assert [e["rank"] for e in record["picked"]] == [1, 2, 3] and record["descriptor"] == result["descriptor"]


def test_write_pick_rerun_replaces_links(tree):
    write_pick(tree / "out", pick_references([tree / "targets"], [tree / "pool"], 4, CFG, quiet=True))
    write_pick(tree / "out", pick_references([tree / "targets"], [tree / "pool"], 2, CFG, quiet=True))
    assert len(os.listdir(tree / "out" / REFERENCES)) == 2


def test_write_pick_exception_foreign_file(tree):
    (tree / "out" / REFERENCES).mkdir(parents=True)
    (tree / "out" / REFERENCES / "mine.jpg").write_bytes(b"x")
    result = pick_references([tree / "targets"], [tree / "pool"], 2, CFG, quiet=True)
    with pytest.raises(ValueError, match=r"mine.jpg: not a link of an earlier pick"):
        write_pick(tree / "out", result)
    assert (tree / "out" / REFERENCES / "mine.jpg").read_bytes() == b"x"


def test_features_read_the_links(tree):
    """`deepcolor features` takes the folder of links: each picked photo becomes a reference."""
    from deepcolor.extract import extract_folder

    links = write_pick(tree / "out", pick_references([tree / "targets"], [tree / "pool"], 3, CFG, quiet=True))
    manifest = extract_folder([links], tree / "features", FeatureConfig(working_size=32, pixels_per_image=50),
                              quiet=True)
    assert manifest["counts"] == {"ok": 3}


# --- the command --------------------------------------------------------------------------

def test_cli_pick(tree, run):
    rc, _, err = run("pick", tree / "targets", "--pool", tree / "pool", "-n", "3", "--out", tree / "out",
                     "--cache", tree / "cache", "--descriptor", "gist")
    assert rc == 0, err
    assert "pick: 3 of 6 colour photos" in err and "deepcolor features" in err
    assert len(os.listdir(tree / "out" / REFERENCES)) == 3
    rc, _, err = run("pick", tree / "targets", "--pool", tree / "pool", "-n", "3", "--out", tree / "out",
                     "--cache", tree / "cache")
    assert rc == 0 and "11 descriptors from the cache" in err


def test_cli_pick_exception_n(tree, run):
    rc, _, err = run("pick", tree / "targets", "--pool", tree / "pool", "-n", "0", "--out", tree / "out")
    assert rc == 2 and "-n must be a positive number of references, got 0" in err


def test_cli_pick_exception_missing_pool(tree, run):
    rc, _, err = run("pick", tree / "targets", "--pool", tree / "nowhere", "--out", tree / "out", "--no-cache")
    assert rc == 2 and "nowhere" in err and "no such file or folder" in err


def test_describe_images_copies_computed_once(tree, monkeypatch):
    calls = []
    original = dpick._describe

    def counting(paths, cfg):
        calls.extend(paths)
        return original(paths, cfg)

    monkeypatch.setattr(dpick, "_describe", counting)
    paths = [tree / "pool" / "r1.png", tree / "pool" / "sub" / "copy-of-r1.png"]
    found = describe_images(paths, CFG, quiet=True)
    assert calls == paths[:1] and found["paths"] == paths
    np.testing.assert_array_equal(found["gist"][0], found["gist"][1])


def test_pick_references_exception_targets_unreadable(tree):
    bad = tree / "bad-targets"
    bad.mkdir()
    (bad / "a.png").write_bytes(b"not a png")
    with pytest.raises(ValueError, match="none of the 1 target images could be read"):
        pick_references([bad], [tree / "pool"], 5, CFG, quiet=True)


def test_pick_references_exception_descriptor(tree):
    with pytest.raises(ValueError, match=r"descriptor must be one of .*, got 'gist\+histogram'"):
        pick_references([tree / "targets"], [tree / "pool"], 5, CFG, "gist+histogram", quiet=True)


def test_write_pick_exception_not_a_folder(tree):
    (tree / "out").mkdir()
    (tree / "out" / REFERENCES).write_bytes(b"x")
    result = pick_references([tree / "targets"], [tree / "pool"], 2, CFG, quiet=True)
    with pytest.raises(ValueError, match=r"references: not a folder; choose another --out"):
        write_pick(tree / "out", result)


def test_descriptor_cache_unwritable_warns(tree, caplog):
    (tree / "cache-file").write_bytes(b"a file where the cache folder should be")
    with caplog.at_level(logging.WARNING):
        found = describe_images([tree / "pool" / "r0.png"], CFG, cache_dir=tree / "cache-file", quiet=True)
    assert len(found["paths"]) == 1
    assert "cannot write the descriptor cache" in caplog.text and "cache-file" in caplog.text


def test_describe_images_cache_saved_along_the_way(tree, monkeypatch):
    """A large pool's cache is written every _SAVE_EVERY new images, not only at the end."""
    saves = []
    original = DescriptorCache.save

    def counting(self):
        saves.append(len(self.entries))
        original(self)

    monkeypatch.setattr(dpick, "_SAVE_EVERY", 1)
    monkeypatch.setattr(dpick, "_CHUNK", 2)
    monkeypatch.setattr(DescriptorCache, "save", counting)
    describe_images(sorted((tree / "pool").glob("r*.png")), CFG, cache_dir=tree / "cache", quiet=True)
    assert saves[:3] == [2, 4, 6]
