"""Images in and out: load any Pillow image as RGB, fetch URLs into a cache, write them atomically (:mod:`.files`)."""

from __future__ import annotations

import hashlib
import json
import os
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any, Callable, Mapping

from PIL import Image, ImageOps, PngImagePlugin, UnidentifiedImageError

from ..contracts.run import Writer
from ..contracts.scales import shape_at
from ..errors import ImageError, UserError
from ..recipe.paths import PathProblem, existing_file
from .files import write_atomic

__all__ = ["cache_root", "cache_dir", "fetch", "load_image", "resize_long_edge", "to_tensor", "to_pil", "save_image",
           "image_writer"]

FORMATS = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG", ".webp": "WEBP"}
USER_AGENT = "stylefw/0.1 (neural style transfer; +https://pypi.org/project/stylefw/)"
Progress = Callable[[int, int | None], None]


def cache_root() -> Path:
    """stylefw's user cache: ``$STYLEFW_CACHE``, or ``stylefw`` in ``$XDG_CACHE_HOME`` (``~/.cache``)."""
    base = os.environ.get("STYLEFW_CACHE") or Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "stylefw"
    return Path(base)


def cache_dir() -> Path:
    """Where downloaded images are kept: ``images`` in :func:`cache_root`."""
    return cache_root() / "images"


def fetch(url: str, *, progress: Progress | None = None) -> Path:
    """The cached copy of ``url``, downloading it once (to a temporary file, then renamed)."""
    name = url.rsplit("/", 1)[-1].split("?")[0] or "image"
    target = cache_dir() / f"{hashlib.sha256(url.encode()).hexdigest()[:16]}-{name}"
    if target.is_file():
        if _is_image(target):
            return target
        target.unlink()  # an error page cached by an older stylefw: fetch it again
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        request = urllib.request.Request(url, headers={"User-Agent": USER_AGENT})
        with urllib.request.urlopen(request, timeout=30) as response:
            total = int(response.headers.get("Content-Length") or 0) or None
            write_atomic(target, lambda handle: _copy_image(url, response, handle, total, progress))
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", None) or exc
        raise ImageError(
            f"cannot download {url} ({reason})",
            hint=f"offline? download it elsewhere and pass a local file with --content/--style, "
            f"or place it at {target}",
        ) from exc
    return target


def _copy_image(url: str, response, handle, total: int | None, progress: Progress | None) -> None:
    """The download, refused before it is cached when it is not an image (a login or error page, say)."""
    _copy(response, handle, total, progress)
    handle.flush()
    if not _is_image(Path(handle.name)):
        kind = response.headers.get("Content-Type") or "unknown content"
        raise ImageError(f"{url} is not an image (the server sent {kind})",
                         hint="check the URL in a browser: it may need a login, or point at a web page")


def _is_image(path: Path) -> bool:
    """Whether Pillow recognises ``path`` as an image, from its header alone (cheap)."""
    try:
        with Image.open(path):
            return True
    except (OSError, ValueError, Image.DecompressionBombError):
        return False


def _copy(response, handle, total: int | None, progress: Progress | None) -> None:
    done = 0
    while chunk := response.read(1 << 16):
        handle.write(chunk)
        done += len(chunk)
        if progress:
            progress(done, total)


def load_image(path: str | Path, *, sha256: str | None = None) -> Image.Image:
    """Read ``path`` as 8-bit RGB, applying EXIF orientation and flattening alpha onto white."""
    path = Path(path)
    try:
        existing_file(str(path), Path.cwd())
    except PathProblem as exc:
        # a missing file is named as the user gave it
        raise ImageError(f"image file not found: {path}" if exc.missing else f"image file {exc}") from None
    if sha256 is not None:
        _verify(path, sha256)
    try:
        with Image.open(path) as opened:
            image = ImageOps.exif_transpose(opened)
            image.load()
    except FileNotFoundError:
        raise ImageError(f"image file not found: {path}") from None
    except Image.DecompressionBombError as exc:
        raise ImageError(f"{path} is too large to decode safely ({exc})", hint="downscale it first") from None
    except UnidentifiedImageError:
        raise ImageError(f"{path} is not an image Pillow can read", hint="use PNG, JPEG or WebP") from None
    except (OSError, SyntaxError, ValueError) as exc:
        raise ImageError(f"cannot decode {path}: {exc} (is the file truncated?)") from None
    return _to_rgb(image)


def _verify(path: Path, expected: str) -> None:
    try:
        actual = hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError as exc:
        raise ImageError(f"cannot read {path}: {exc.strerror}") from None
    if actual != expected.lower():
        raise ImageError(f"{path} has sha256 {actual}, but the recipe expects {expected}",
                         hint="the file changed or the download is corrupt; delete it and try again")


def _to_rgb(image: Image.Image) -> Image.Image:
    if image.mode in ("I;16", "I;16B", "I;16L", "I"):
        # 16-bit greyscale: scale to 8 bits rather than clipping everything above 255 to white
        image = image.point(lambda value: value / 257).convert("L")
    if image.mode == "P" and "transparency" in image.info:
        image = image.convert("RGBA")
    if image.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        background = Image.new("RGBA", image.size, (255, 255, 255, 255))
        image = Image.alpha_composite(background, image.convert("RGBA"))
    return image.convert("RGB")


def resize_long_edge(image: Image.Image, long_edge: int) -> Image.Image:
    """Scale so the longer side is ``long_edge`` pixels, keeping the aspect ratio."""
    size = shape_at(*image.size, long_edge)
    return image if size == image.size else image.resize(size, Image.Resampling.LANCZOS)


def to_tensor(image: Image.Image):
    """A 1×3×H×W float tensor in [0, 1]."""
    from torchvision.transforms.functional import pil_to_tensor  # deferred: start-up time (the file tools need none)

    return pil_to_tensor(image).unsqueeze(0).float().div(255.0).contiguous()


def to_pil(tensor) -> Image.Image:
    """The first image of an N×3×H×W tensor in [0, 1] as 8-bit RGB."""
    from torchvision.transforms.functional import to_pil_image  # deferred: start-up time, as in to_tensor

    return to_pil_image(tensor.detach()[0].clamp(0, 1).mul(255).round().byte().cpu(), mode="RGB")


def save_image(image: Image.Image, path: str | Path, metadata: Mapping[str, Any] | None = None) -> Path:
    """Write ``image`` atomically, in the format its extension names, with ``metadata`` embedded."""
    path = Path(path)
    write_atomic(path, image_writer(image, path, metadata))
    return path


def image_writer(image: Image.Image, path: Path, metadata: Mapping[str, Any] | None = None) -> Writer:
    """What writes ``image`` to a handle in the format ``path``'s extension names, with ``metadata`` embedded."""
    fmt = FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise UserError(f"cannot write {path}: unknown format '{path.suffix}'", hint="use .png, .jpg or .webp")
    options: dict[str, Any] = {}
    text = json.dumps(metadata, default=str) if metadata is not None else None
    if fmt == "PNG" and text:
        info = PngImagePlugin.PngInfo()
        info.add_itxt("stylefw", text)
        options["pnginfo"] = info
    elif fmt == "JPEG":
        options.update(quality=95, **({"comment": text} if text else {}))
    elif fmt == "WEBP":
        options.update(quality=95)
    return lambda handle: image.save(handle, format=fmt, **options)
