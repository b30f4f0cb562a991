"""Images in and out: every Pillow mode becomes sensible RGB, bad files fail clearly, writes are atomic."""

from __future__ import annotations

import hashlib
import io
import json
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, features

from stylefw.errors import ImageError, UserError
from stylefw.engine.files import write_json
from stylefw.engine.image import cache_dir, fetch, load_image, resize_long_edge, save_image, to_pil, to_tensor

UNREACHABLE = "http://127.0.0.1:9/x.jpg"  # the discard port: refused at once, no network used


def noise(width: int = 32, height: int = 24, seed: int = 0) -> np.ndarray:
    """Random RGB pixels: incompressible, so a truncated file really lacks image data."""
    return np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)


def pixels(image: Image.Image) -> np.ndarray:
    assert image.mode == "RGB"
    return np.asarray(image).astype(int)


# -- reading ------------------------------------------------------------------------------------


@pytest.mark.parametrize("suffix", [".png", ".webp"])
def test_rgb_images_load_unchanged(tmp_path: Path, suffix: str) -> None:
    array = noise()
    path = tmp_path / f"rgb{suffix}"
    Image.fromarray(array).save(path, **({"lossless": True} if suffix == ".webp" else {}))
    assert np.array_equal(pixels(load_image(path)), array)


def test_jpeg_photo_loads_close_to_the_original(tmp_path: Path) -> None:
    from skimage import data

    photo = data.astronaut()[::4, ::4]  # a real photo, 128×128, so JPEG behaves as it does on photos
    Image.fromarray(photo).save(tmp_path / "astronaut.jpg", quality=95)
    loaded = pixels(load_image(tmp_path / "astronaut.jpg"))
    assert loaded.shape == photo.shape
    assert np.abs(loaded - photo).mean() < 4


@pytest.mark.parametrize(
    ("orientation", "turn"),
    [(3, lambda a: np.rot90(a, 2)), (6, lambda a: np.rot90(a, -1)), (8, lambda a: np.rot90(a, 1))],
)
def test_exif_orientation_is_applied(tmp_path: Path, orientation: int, turn) -> None:
    array = noise(30, 20)
    exif = Image.Exif()
    exif[0x0112] = orientation  # what a phone writes instead of rotating the pixels
    Image.fromarray(array).save(tmp_path / "phone.png", exif=exif.tobytes())
    assert np.array_equal(pixels(load_image(tmp_path / "phone.png")), turn(array))


def test_grayscale_becomes_grey_rgb(tmp_path: Path) -> None:
    grey = noise()[..., 0]
    Image.fromarray(grey, "L").save(tmp_path / "grey.png")
    assert np.array_equal(pixels(load_image(tmp_path / "grey.png")), np.stack([grey] * 3, axis=-1))


def test_rgba_is_flattened_on_white(tmp_path: Path) -> None:
    rgba = np.array([[[255, 0, 0, 0], [0, 0, 255, 255], [0, 0, 0, 128]]], dtype=np.uint8)
    Image.fromarray(rgba, "RGBA").save(tmp_path / "alpha.png")
    loaded = pixels(load_image(tmp_path / "alpha.png"))
    assert loaded[0, 0].tolist() == [255, 255, 255]  # fully transparent red is white, not red or black
    assert loaded[0, 1].tolist() == [0, 0, 255]
    assert np.abs(loaded[0, 2] - 127).max() <= 1  # half-transparent black over white is mid grey


def test_grey_with_alpha_is_flattened_on_white(tmp_path: Path) -> None:
    Image.new("LA", (4, 4), (0, 0)).save(tmp_path / "la.png")
    assert (pixels(load_image(tmp_path / "la.png")) == 255).all()


def test_palette_image_becomes_its_colours(tmp_path: Path) -> None:
    palette = Image.fromarray(noise()).quantize(colors=8)
    palette.save(tmp_path / "palette.png")
    assert np.array_equal(pixels(load_image(tmp_path / "palette.png")), np.asarray(palette.convert("RGB")))


def test_palette_transparency_is_flattened_on_white(tmp_path: Path) -> None:
    image = Image.new("P", (4, 2), 0)
    image.putpalette([255, 0, 0, 0, 255, 0] + [0] * 762)
    image.paste(1, (2, 0, 4, 2))
    image.save(tmp_path / "gif-like.png", transparency=0)
    loaded = pixels(load_image(tmp_path / "gif-like.png"))
    assert loaded[:, :2].tolist() == [[[255, 255, 255]] * 2] * 2
    assert loaded[:, 2:].tolist() == [[[0, 255, 0]] * 2] * 2


def test_cmyk_becomes_rgb(tmp_path: Path) -> None:
    Image.new("CMYK", (4, 4), (0, 255, 255, 0)).save(tmp_path / "print.tif")
    assert (pixels(load_image(tmp_path / "print.tif")) == [255, 0, 0]).all()


@pytest.mark.parametrize("suffix", [".png", ".tif"])
def test_16_bit_greyscale_is_scaled_not_clipped(tmp_path: Path, suffix: str) -> None:
    ramp = np.linspace(0, 65535, 64 * 16).round().astype(np.uint16).reshape(16, 64)
    Image.fromarray(ramp).save(tmp_path / f"scan{suffix}")
    assert Image.open(tmp_path / f"scan{suffix}").mode == "I;16"
    loaded = pixels(load_image(tmp_path / f"scan{suffix}"))
    assert np.abs(loaded[..., 1] - ramp / 257).max() <= 1
    assert (loaded[..., 0] == loaded[..., 2]).all()
    assert (loaded < 255).mean() > 0.9  # clipping would turn everything above 255 of 65535 white


# -- bad input ----------------------------------------------------------------------------------


def test_decompression_bomb_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    Image.fromarray(noise(64, 64)).save(tmp_path / "bomb.png")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)  # 4096 pixels is more than twice the limit
    with pytest.raises(ImageError, match=r"bomb\.png is too large to decode safely") as caught:
        load_image(tmp_path / "bomb.png")
    assert caught.value.hint == "downscale it first"


@pytest.mark.parametrize("suffix", [".png", ".jpg"])
def test_truncated_file_is_refused(tmp_path: Path, suffix: str) -> None:
    path = tmp_path / f"cut{suffix}"
    Image.fromarray(noise(64, 64)).save(path)
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(ImageError, match=rf"cannot decode {path}: .*truncated"):
        load_image(path)


def test_non_image_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "notes.png"
    path.write_text("these are notes, not a picture")
    with pytest.raises(ImageError, match=rf"{path} is not an image Pillow can read") as caught:
        load_image(path)
    assert caught.value.hint == "use PNG, JPEG or WebP"


def test_missing_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ImageError, match=rf"image file not found: {tmp_path / 'gone.png'}$"):
        load_image(tmp_path / "gone.png")


def test_matching_sha256_loads(tmp_path: Path) -> None:
    path = tmp_path / "pinned.png"
    Image.fromarray(noise()).save(path)
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    assert load_image(path, sha256=digest.upper()).size == (32, 24)


def test_sha256_mismatch_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "pinned.png"
    Image.fromarray(noise()).save(path)
    actual = hashlib.sha256(path.read_bytes()).hexdigest()
    with pytest.raises(ImageError) as caught:
        load_image(path, sha256="0" * 64)
    assert caught.value.message == f"{path} has sha256 {actual}, but the recipe expects {'0' * 64}"
    assert "delete it" in caught.value.hint


# -- conversions --------------------------------------------------------------------------------


def test_tensor_round_trip_is_exact() -> None:
    image = Image.fromarray(noise())
    tensor = to_tensor(image)
    assert tuple(tensor.shape) == (1, 3, 24, 32)
    assert 0.0 <= float(tensor.min()) and float(tensor.max()) <= 1.0
    assert np.array_equal(np.asarray(to_pil(tensor)), np.asarray(image))


@pytest.mark.parametrize(("size", "edge", "expected"), [((48, 40), 32, (32, 27)), ((40, 48), 32, (27, 32)),
                                                         ((32, 32), 32, (32, 32)), ((10, 5), 40, (40, 20))])
def test_resize_long_edge_keeps_the_aspect_ratio(size: tuple[int, int], edge: int, expected: tuple[int, int]) -> None:
    assert resize_long_edge(Image.new("RGB", size), edge).size == expected


# -- writing ------------------------------------------------------------------------------------


@pytest.mark.parametrize(("suffix", "fmt"), [(".png", "PNG"), (".jpg", "JPEG"), (".JPEG", "JPEG"), (".webp", "WEBP")])
def test_format_follows_the_extension(tmp_path: Path, suffix: str, fmt: str) -> None:
    if fmt == "WEBP" and not features.check("webp"):
        pytest.skip("this Pillow has no WebP support")
    path = save_image(Image.fromarray(noise()), tmp_path / f"out{suffix}", {"seed": 1})
    with Image.open(path) as written:
        assert (written.format, written.size) == (fmt, (32, 24))
    assert sorted(p.name for p in tmp_path.iterdir()) == [f"out{suffix}"]  # no temporary file left


def test_png_embeds_metadata_as_json(tmp_path: Path) -> None:
    metadata = {"recipe": {"steps": 3, "losses": [{"name": "tv", "weight": 1.5}]}, "seed": 7, "path": tmp_path}
    path = save_image(Image.fromarray(noise()), tmp_path / "out.png", metadata)
    with Image.open(path) as written:
        assert json.loads(written.text["stylefw"]) == {**metadata, "path": str(tmp_path)}
        assert np.array_equal(np.asarray(written.convert("RGB")), noise())


def test_unknown_extension_is_refused(tmp_path: Path) -> None:
    with pytest.raises(UserError, match=r"unknown format '\.gif'"):
        save_image(Image.fromarray(noise()), tmp_path / "out.gif")
    assert list(tmp_path.iterdir()) == []


def test_failed_write_leaves_the_old_output_and_no_partial_file(tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "out.png"
    path.write_bytes(b"the previous result")

    def disk_full(self: Image.Image, fp, *args, **kwargs) -> None:
        fp.write(b"\x89PNG half an image")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(Image.Image, "save", disk_full)
    with pytest.raises(OSError, match="No space left"):
        save_image(Image.fromarray(noise()), path, {"seed": 0})
    assert path.read_bytes() == b"the previous result"
    assert [p.name for p in tmp_path.iterdir()] == ["out.png"]


def test_failed_write_creates_no_output(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(self: Image.Image, fp, *args, **kwargs) -> None:
        fp.write(b"partial")
        raise KeyboardInterrupt  # Ctrl-C in the middle of a write must not leave half a file either

    monkeypatch.setattr(Image.Image, "save", broken)
    with pytest.raises(KeyboardInterrupt):
        save_image(Image.fromarray(noise()), tmp_path / "new" / "out.jpg")
    assert list((tmp_path / "new").iterdir()) == []


def test_written_files_are_not_private(tmp_path: Path) -> None:
    # the temporary file is created 0600; the output should get the usual umask permissions
    previous = os.umask(0o022)
    try:
        path = save_image(Image.fromarray(noise()), tmp_path / "out.png")
    finally:
        os.umask(previous)
    assert path.stat().st_mode & 0o777 == 0o644


def test_write_json_is_indented_and_complete(tmp_path: Path) -> None:
    path = write_json(tmp_path / "out.png.json", {"output": tmp_path / "out.png", "trace": [1.5, 2.0]})
    text = path.read_text()
    assert json.loads(text) == {"output": str(tmp_path / "out.png"), "trace": [1.5, 2.0]}
    assert text.startswith("{\n  ") and text.endswith("}\n")


# -- downloads ----------------------------------------------------------------------------------


def test_cache_dir_honours_stylefw_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STYLEFW_CACHE", str(tmp_path / "cache"))
    assert cache_dir() == tmp_path / "cache" / "images"


def test_cache_dir_falls_back_on_xdg(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("STYLEFW_CACHE", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert cache_dir() == tmp_path / "stylefw" / "images"


def test_unreachable_url_says_how_to_pass_a_local_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STYLEFW_CACHE", str(tmp_path))
    with pytest.raises(ImageError) as caught:
        fetch(UNREACHABLE)
    assert caught.value.message.startswith(f"cannot download {UNREACHABLE} (")
    assert "pass a local file with --content/--style" in caught.value.hint
    assert [p for p in (tmp_path / "images").iterdir()] == []  # nothing half-downloaded is kept


def test_a_cached_download_is_used_without_the_network(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STYLEFW_CACHE", str(tmp_path))
    with pytest.raises(ImageError) as caught:
        fetch(UNREACHABLE)
    # the hint names where the file should go; once it is there, the same URL needs no network
    target = Path(caught.value.hint.rsplit("place it at ", 1)[1])
    assert target.parent == tmp_path / "images" and target.name.endswith("-x.jpg")
    Image.fromarray(noise()).save(target, format="JPEG")
    assert fetch(UNREACHABLE) == target
    assert load_image(fetch(UNREACHABLE)).size == (32, 24)


class _FakeResponse(io.BytesIO):
    """What urlopen returns, serving ``body`` with a Content-Type."""

    def __init__(self, body: bytes, content_type: str) -> None:
        super().__init__(body)
        self.headers = {"Content-Type": content_type, "Content-Length": str(len(body))}


def _serve(monkeypatch: pytest.MonkeyPatch, body: bytes, content_type: str) -> list[str]:
    calls: list[str] = []

    def urlopen(request, timeout=None):
        calls.append(request.full_url)
        return _FakeResponse(body, content_type)

    monkeypatch.setattr("urllib.request.urlopen", urlopen)
    return calls


def test_a_download_that_is_not_an_image_is_not_cached(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STYLEFW_CACHE", str(tmp_path))
    _serve(monkeypatch, b"<html>please log in</html>", "text/html")
    with pytest.raises(ImageError, match=r"is not an image \(the server sent text/html\)"):
        fetch("https://example.com/a.jpg")
    assert list((tmp_path / "images").iterdir()) == []


def test_a_cached_download_that_is_not_an_image_is_fetched_again(tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STYLEFW_CACHE", str(tmp_path))
    png = io.BytesIO()
    Image.fromarray(noise()).save(png, format="PNG")
    calls = _serve(monkeypatch, png.getvalue(), "image/png")
    target = fetch("https://example.com/a.png")
    target.write_bytes(b"<html>an error page an older stylefw kept</html>")
    assert load_image(fetch("https://example.com/a.png")).size == (32, 24)
    assert len(calls) == 2
