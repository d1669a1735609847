"""Reading and writing medical images, with one intensity contract for all of medviz.

The contract (every image that crosses a medviz API is a ``MedicalImage``):

* ``pixels`` is a C-contiguous ``float32`` array, ``(H, W)`` for grayscale or ``(H, W, 3)`` for RGB.
* Values lie in ``[0, 1]`` **as displayed**: 0 is black, 1 is white. For radiographs that means
  bright = attenuating (MONOCHROME2); MONOCHROME1 data are inverted on reading. Grayscale stored as
  RGB with equal channels is reduced to ``(H, W)``.
* DICOM pixel values pass the modality LUT (rescale slope/intercept) and then the VOI transform
  (the file's first window or VOI LUT, or a window the caller gives, else the full range of the
  data), so ``[0, 1]`` spans the chosen window.
* PNG/JPEG/TIFF integers are divided by the maximum of their bit depth (255, 65535); EXIF orientation
  is applied; alpha is composited over black; palettes are expanded. Float TIFFs are scaled by their
  own minimum and maximum.

Everything else converts only at a model boundary (e.g. to ``[-1, 1]`` tensors).

Bad input raises ``ImageReadError`` (a ``ValueError``) whose message names the problem in one
sentence, suitable to show a user: not an image, truncated, too many pixels, multi-frame or 3-D,
undecodable compression, no pixel data.
"""

from __future__ import annotations

import datetime
import io
import json
import os
import struct
import threading
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
from PIL import Image, ImageOps, PngImagePlugin, UnidentifiedImageError

from . import RESEARCH_ONLY_NOTICE, __version__

#: Largest image accepted by default (pixels); protects against decompression bombs.
DEFAULT_MAX_PIXELS = int(os.environ.get("MEDVIZ_MAX_PIXELS", 64_000_000))

PNG_PARAMETERS_KEY = "parameters"      # A1111-compatible human-readable line
PNG_METADATA_KEY = "medviz"            # JSON with the full parameters
SECONDARY_CAPTURE_SOP_CLASS = "1.2.840.10008.5.1.4.1.1.7"
_PIL_LIMIT_LOCK = threading.Lock()


class ImageReadError(ValueError):
    """An input that cannot become a ``MedicalImage``; the message is meant for the user."""


@dataclass(frozen=True)
class ImageInfo:
    """Where the pixels came from and how they were mapped into the contract."""

    source_format: str                       # "PNG", "JPEG", "TIFF", "DICOM", ...
    original_dtype: str
    original_shape: tuple[int, ...]
    bits: int | None = None                  # bits per sample of the stored data
    photometric: str | None = None           # DICOM photometric interpretation or PIL mode
    window: tuple[float, float] | None = None  # (center, width) used for DICOM VOI
    inverted: bool = False                   # MONOCHROME1 inverted to display convention
    transfer_syntax: str | None = None
    notes: tuple[str, ...] = ()


@dataclass(frozen=True)
class MedicalImage:
    """Pixels in the medviz intensity contract (see module docstring) plus their provenance."""

    pixels: np.ndarray
    info: ImageInfo
    metadata: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        check_contract(self.pixels)

    @property
    def is_rgb(self) -> bool:
        return self.pixels.ndim == 3

    @property
    def size(self) -> tuple[int, int]:
        """(width, height), as PIL reports it."""
        return self.pixels.shape[1], self.pixels.shape[0]


def check_contract(pixels: np.ndarray) -> None:
    """Raise ``ValueError`` unless ``pixels`` is float32 (H, W) or (H, W, 3) in [0, 1] without NaN."""
    if not isinstance(pixels, np.ndarray) or pixels.dtype != np.float32:
        raise ValueError(f"pixels must be a float32 numpy array, got {getattr(pixels, 'dtype', type(pixels))}")
    if not (pixels.ndim == 2 or (pixels.ndim == 3 and pixels.shape[2] == 3)):
        raise ValueError(f"pixels must be (H, W) or (H, W, 3), got shape {pixels.shape}")
    if pixels.size and (not np.isfinite(pixels).all() or pixels.min() < 0.0 or pixels.max() > 1.0):
        raise ValueError("pixels must be finite and within [0, 1]")


def from_array(pixels: np.ndarray, source: str = "array") -> MedicalImage:
    """Wrap an array already in the contract (float in [0, 1], or uint8/uint16) as a ``MedicalImage``."""
    array = np.asarray(pixels)
    if array.dtype == np.uint8:
        array = array.astype(np.float32) / 255.0
    elif array.dtype == np.uint16:
        array = array.astype(np.float32) / 65535.0
    array = np.ascontiguousarray(array, dtype=np.float32)
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[..., 0]
    return MedicalImage(array, ImageInfo(source, str(np.asarray(pixels).dtype), tuple(np.shape(pixels))))


# --------------------------------------------------------------------------------------------
# Reading
# --------------------------------------------------------------------------------------------

def read_image(source: str | os.PathLike | bytes | BinaryIO, *, max_pixels: int = DEFAULT_MAX_PIXELS,
               window: tuple[float, float] | None = None, max_side: int | None = None) -> MedicalImage:
    """Read a PNG, JPEG, TIFF, BMP, WebP or DICOM image into the intensity contract.

    Args:
        source: a path, the file's bytes, or a binary file object.
        max_pixels: refuse images with more pixels than this (checked before decoding).
        window: DICOM only: (center, width) in modality units, overriding the file's VOI.
        max_side: reduce the image (aspect kept, box-filtered) so that its longer side is at most this, right
            after decoding: a huge upload then never exists in the contract's float32 at full size
            (JPEG decodes at the reduced scale directly). ``info.original_shape`` keeps the stored size.

    Raises:
        ImageReadError: with a one-sentence message naming the problem.
    """
    data, name = _read_bytes(source)
    if not data:
        raise ImageReadError(f"{name}: the file is empty")
    if _looks_like_dicom(data, name):
        image = _read_dicom(data, name, max_pixels, window)
        return _reduced(image, max_side) if max_side else image
    return _read_raster(data, name, max_pixels, max_side)


def _reduced(image: MedicalImage, max_side: int) -> MedicalImage:
    """``image`` with its longer side at most ``max_side`` (box filter per channel, in float32)."""
    height, width = image.pixels.shape[:2]
    target = _fitted((width, height), max_side)
    if target == (width, height):
        return image
    channels = image.pixels if image.pixels.ndim == 3 else image.pixels[..., None]
    reduced = np.stack(
        [
            np.asarray(Image.fromarray(np.ascontiguousarray(channels[..., c]), "F").resize(target, Image.BOX))
            for c in range(channels.shape[-1])
        ],
        axis=-1,
    )
    pixels = np.clip(reduced[..., 0] if image.pixels.ndim == 2 else reduced, 0.0, 1.0).astype(np.float32)
    notes = (*image.info.notes, _reduction_note((width, height), target))
    return MedicalImage(pixels, replace(image.info, notes=notes), image.metadata)


def _fitted(size: tuple[int, int], max_side: int) -> tuple[int, int]:
    """(width, height) scaled so that the longer side is at most ``max_side`` (unchanged if it already is)."""
    width, height = size
    scale = max_side / max(width, height)
    return size if scale >= 1 else (max(1, round(width * scale)), max(1, round(height * scale)))


def _reduction_note(before: tuple[int, int], after: tuple[int, int]) -> str:
    return f"reduced from {before[0]}×{before[1]} to {after[0]}×{after[1]} on reading"


def _read_bytes(source: str | os.PathLike | bytes | BinaryIO) -> tuple[bytes, str]:
    if isinstance(source, (bytes, bytearray, memoryview)):
        return bytes(source), "upload"
    if hasattr(source, "read"):
        return source.read(), getattr(source, "name", "upload")
    path = Path(source)
    if not path.exists():
        raise ImageReadError(f"{path}: no such file")
    if path.is_dir():
        raise ImageReadError(f"{path}: is a folder, not an image file")
    return path.read_bytes(), path.name


def _looks_like_dicom(data: bytes, name: str) -> bool:
    if len(data) >= 132 and data[128:132] == b"DICM":
        return True
    # DICOM without the 128-byte preamble (allowed for some old files): trust the extension.
    return name.lower().endswith((".dcm", ".dicom")) and not data.startswith(
        (b"\x89PNG", b"\xff\xd8", b"II*", b"MM\0*")
    )


def _read_raster(data: bytes, name: str, max_pixels: int, max_side: int | None = None) -> MedicalImage:
    # PIL's own bomb check is replaced by ours (a configurable limit, checked before decoding, with
    # the size in the message); the lock keeps that swap of a global safe between threads.
    with _PIL_LIMIT_LOCK:
        previous, Image.MAX_IMAGE_PIXELS = Image.MAX_IMAGE_PIXELS, None
        try:
            image, stored = _open_raster(data, name, max_pixels, max_side)
        finally:
            Image.MAX_IMAGE_PIXELS = previous
    note = None
    if max_side and image.mode in _REDUCIBLE_MODES and _fitted(image.size, max_side) != image.size:
        fmt = image.format
        image = image.convert("L") if image.mode == "1" else image
        image = image.resize(_fitted(image.size, max_side), Image.BOX)          # 8-bit modes: reduce before floats
        image.format = fmt
    if image.size != stored:
        note = _reduction_note(stored, image.size)
    read = _raster_to_contract(image, name)
    if note:
        read = MedicalImage(
            read.pixels,
            replace(
                read.info,
                original_shape=(stored[1], stored[0], *read.info.original_shape[2:]),
                notes=(*read.info.notes, note),
            ),
            read.metadata,
        )
    return _reduced(read, max_side) if max_side else read  # the other modes (16-bit, float) reduce here


#: PIL modes reduced as 8-bit images before they become floats (a 7900² bilevel PNG: 62 MB, not 250 MB).
_REDUCIBLE_MODES = ("1", "L", "RGB", "RGBA", "LA", "P", "PA")


def _open_raster(data: bytes, name: str, max_pixels: int, max_side: int | None = None) -> tuple[Image.Image, tuple]:
    """(the decoded image, upright, and its stored (width, height): a JPEG may decode smaller, ``max_side``)."""
    try:
        image = Image.open(io.BytesIO(data))
    except UnidentifiedImageError:
        raise ImageReadError(f"{name}: not a recognised image (PNG, JPEG, TIFF or DICOM expected)") from None
    except (OSError, SyntaxError, ValueError) as error:
        raise ImageReadError(f"{name}: unreadable image header ({_short(error)})") from None
    width, height = image.size
    if width * height > max_pixels:
        raise ImageReadError(
            f"{name}: too many pixels ({width} x {height} = {width * height:,}; the limit is {max_pixels:,})"
        )
    frames = getattr(image, "n_frames", 1)
    if frames > 1:
        raise ImageReadError(
            f"{name}: has {frames} frames; a multi-frame or 3-D image is not supported, export a single 2-D image"
        )
    fmt = image.format or "image"
    try:
        if max_side and fmt == "JPEG":
            image.draft(image.mode, (max_side, max_side))          # DCT scaling: decode at 1/2, 1/4 or 1/8 size
        image.load()
        transposed = ImageOps.exif_transpose(image)
    except (OSError, SyntaxError, ValueError, struct.error, zlib.error) as error:
        text = str(error).lower()
        if any(word in text for word in ("truncated", "broken", "incomplete", "end of", "unexpected")):
            raise ImageReadError(f"{name}: the {fmt} data is truncated or corrupt") from None
        raise ImageReadError(f"{name}: cannot decode the {fmt} data ({_short(error)})") from None
    transposed.format = fmt
    if transposed.size != image.size:                # an EXIF rotation by 90 degrees swaps the sides
        width, height = height, width
    return transposed, (width, height)


def _raster_to_contract(image: Image.Image, name: str) -> MedicalImage:
    fmt = image.format or "image"
    mode = image.mode
    notes: list[str] = []
    if mode == "P" or mode == "PA":
        image = image.convert("RGBA" if "transparency" in image.info or mode == "PA" else "RGB")
        notes.append("palette expanded")
    if image.mode in ("RGBA", "LA"):
        background = Image.new(image.mode[:-1] if image.mode == "LA" else "RGB", image.size, 0)
        background.paste(image, mask=image.getchannel("A"))
        image = background
        notes.append("alpha composited over black")
    if image.mode in ("CMYK", "YCbCr", "HSV", "LAB"):
        image = image.convert("RGB")
    if image.mode == "1":
        image = image.convert("L")
    array = np.asarray(image)
    bits = None
    if array.dtype == np.uint8:
        pixels, bits = array.astype(np.float32) / 255.0, 8
    elif array.dtype.kind in "ui":
        # 16-bit PNG/TIFF arrive as uint16 or int32 ("I"); values beyond 16 bits are scaled by their maximum.
        peak = float(array.max()) if array.size else 0.0
        scale = 65535.0 if peak <= 65535 and array.min() >= 0 else max(peak, 1.0)
        pixels, bits = np.clip(array.astype(np.float32) / scale, 0.0, 1.0), 16
    elif array.dtype.kind == "f":
        pixels = _rescale(array.astype(np.float32))
        notes.append("float data scaled by its own minimum and maximum")
    else:
        raise ImageReadError(f"{name}: unsupported pixel type {array.dtype} ({mode})")
    pixels = _collapse_gray(pixels)
    info = ImageInfo(fmt, str(array.dtype), tuple(array.shape), bits, mode, notes=tuple(notes))
    metadata = {k: v for k, v in image.info.items() if isinstance(v, str)}
    return MedicalImage(np.ascontiguousarray(pixels, dtype=np.float32), info, metadata)


def _rescale(array: np.ndarray) -> np.ndarray:
    finite = np.isfinite(array)
    if not finite.any():
        return np.zeros(array.shape, np.float32)
    lo, hi = float(array[finite].min()), float(array[finite].max())
    out = (np.where(finite, array, lo) - lo) / (hi - lo) if hi > lo else np.zeros(array.shape)
    return np.clip(out, 0.0, 1.0).astype(np.float32)


def _collapse_gray(pixels: np.ndarray) -> np.ndarray:
    if pixels.ndim == 3 and pixels.shape[2] >= 3:
        rgb = pixels[..., :3]
        if np.array_equal(rgb[..., 0], rgb[..., 1]) and np.array_equal(rgb[..., 0], rgb[..., 2]):
            return rgb[..., 0]
        return rgb
    if pixels.ndim == 3 and pixels.shape[2] == 1:
        return pixels[..., 0]
    return pixels


def _read_dicom(data: bytes, name: str, max_pixels: int, window: tuple[float, float] | None) -> MedicalImage:
    """A DICOM file's one 2-D image in the contract: (1) parse, (2) check its geometry, (3) decode the pixels,
    (4) map them to displayed intensity. Every refusal is one ``ImageReadError`` sentence naming the problem."""
    ds = _parse_dicom(data, name)
    samples = _check_dicom_geometry(ds, name, max_pixels)
    transfer = getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", None)
    syntax = getattr(transfer, "name", None) or (str(transfer) if transfer else "implicit little endian")
    try:
        array = ds.pixel_array
    except (NotImplementedError, RuntimeError, ImportError) as error:
        raise ImageReadError(f"{name}: cannot decode the compressed pixel data ({syntax}): {_short(error)}") from None
    except Exception as error:
        raise ImageReadError(f"{name}: the DICOM pixel data is truncated or inconsistent ({_short(error)})") from None
    if array.ndim == 3 and samples == 1 or array.ndim > 3:
        raise ImageReadError(f"{name}: pixel data has shape {array.shape}; only single 2-D images are supported")
    photometric = str(getattr(ds, "PhotometricInterpretation", "MONOCHROME2")).strip().upper()
    try:
        pixels, used_window, inverted, notes = _dicom_intensity(ds, array, samples, photometric, window)
    except ImageReadError:
        raise
    except Exception as error:  # malformed LUTs and windows
        raise ImageReadError(f"{name}: cannot apply the DICOM intensity transforms ({_short(error)})") from None
    pixels = np.ascontiguousarray(np.clip(pixels, 0.0, 1.0), dtype=np.float32)
    if pixels.ndim == 3:
        pixels = _collapse_gray(pixels)
    info = ImageInfo("DICOM", str(array.dtype), tuple(array.shape), int(getattr(ds, "BitsStored", 0) or 0) or None,
                     photometric, used_window, inverted, syntax, tuple(notes))
    metadata = {"Modality": str(getattr(ds, "Modality", "")),
                "ImageType": "\\".join(getattr(ds, "ImageType", []) or [])}
    return MedicalImage(pixels, info, metadata)


def _parse_dicom(data: bytes, name: str):
    """The dataset of a DICOM file that holds pixel data (a preamble-less file is read too)."""
    import pydicom
    from pydicom.errors import InvalidDicomError

    try:
        ds = pydicom.dcmread(io.BytesIO(data), force=data[128:132] != b"DICM")
    except (InvalidDicomError, EOFError, ValueError, KeyError, TypeError, AttributeError, OSError) as error:
        raise ImageReadError(f"{name}: not a readable DICOM file ({_short(error)})") from None
    except Exception as error:  # pydicom raises assorted errors on damaged headers
        raise ImageReadError(f"{name}: damaged DICOM header ({_short(error)})") from None
    if not any(k in ds for k in ("PixelData", "FloatPixelData", "DoubleFloatPixelData")):
        kind = getattr(ds, "SOPClassUID", None)
        kind_name = getattr(kind, "name", None) or "this object"
        raise ImageReadError(f"{name}: the DICOM file holds no image ({kind_name} has no pixel data)")
    return ds


def _check_dicom_geometry(ds, name: str, max_pixels: int) -> int:
    """Refuse what is not one 2-D image of at most ``max_pixels``; returns its samples per pixel (1 or 3)."""
    try:
        rows, cols = int(ds.Rows), int(ds.Columns)
    except AttributeError:
        raise ImageReadError(f"{name}: the DICOM file lacks Rows/Columns, so its pixels cannot be read") from None
    except (TypeError, ValueError) as error:
        raise ImageReadError(f"{name}: damaged DICOM header, invalid Rows/Columns ({_short(error)})") from None
    if rows * cols > max_pixels:
        raise ImageReadError(
            f"{name}: too many pixels ({cols} x {rows} = {rows * cols:,}; the limit is {max_pixels:,})"
        )
    try:
        frames = int(getattr(ds, "NumberOfFrames", 1) or 1)
        samples = int(getattr(ds, "SamplesPerPixel", 1) or 1)
    except (TypeError, ValueError) as error:
        raise ImageReadError(f"{name}: damaged DICOM header ({_short(error)})") from None
    if frames > 1:
        raise ImageReadError(f"{name}: multi-frame DICOM with {frames} frames (a 3-D volume or cine); "
                             "only single 2-D images are supported, export one slice")
    if samples not in (1, 3):
        raise ImageReadError(f"{name}: {samples} samples per pixel is not supported (1 or 3 expected)")
    return samples


def _dicom_intensity(ds, array: np.ndarray, samples: int, photometric: str, window: tuple[float, float] | None):
    """(pixels in [0, 1] as displayed, the window used or None, MONOCHROME1 inverted, notes): colour rescaled by its
    bits, palette colour through its LUT, gray through the modality LUT and then the given window, the file's VOI,
    or its full data range."""
    from pydicom.pixels import apply_modality_lut, apply_voi_lut

    notes: list[str] = []
    used_window: tuple[float, float] | None = None
    inverted = False
    if samples == 3:
        # pydicom converts YBR to RGB when decoding; PALETTE COLOR is handled below.
        pixels = _rescale_integer(array, int(getattr(ds, "BitsStored", 8) or 8))
    elif photometric == "PALETTE COLOR":
        from pydicom.pixels import apply_color_lut

        rgb = apply_color_lut(array, ds)
        bits = 16 if rgb.dtype == np.uint16 else 8
        pixels = _rescale_integer(rgb, bits)
        notes.append("palette colour LUT applied")
    else:
        values = apply_modality_lut(array, ds).astype(np.float64)
        if window is not None:
            used_window = (float(window[0]), float(window[1]))
            pixels = window_level(values, *used_window)
        elif "VOILUTSequence" in ds or "WindowCenter" in ds:
            pixels, used_window = _apply_file_voi(values, ds, apply_voi_lut)
            notes.append("VOI from the file")
        else:
            pixels = _rescale(values.astype(np.float32))
            notes.append("no VOI in the file: full data range")
        if photometric == "MONOCHROME1":
            pixels = 1.0 - pixels
            inverted = True
    return pixels, used_window, inverted, notes


def _rescale_integer(array: np.ndarray, bits: int) -> np.ndarray:
    if array.dtype.kind == "f":
        return _rescale(array.astype(np.float32))
    peak = float(2 ** min(max(bits, 1), 32) - 1)
    return np.clip(array.astype(np.float32) / peak, 0.0, 1.0)


def _apply_file_voi(values: np.ndarray, ds: Any, apply_voi_lut) -> tuple[np.ndarray, tuple[float, float] | None]:
    """First VOI LUT (pydicom, normalised by its output bits) or first window of the file."""
    if "VOILUTSequence" in ds and ds.VOILUTSequence:
        item = ds.VOILUTSequence[0]
        out = apply_voi_lut(values, ds, index=0, prefer_lut=True)
        bits = int(item.LUTDescriptor[2])
        return np.clip(out / float(2 ** bits - 1), 0.0, 1.0), None
    center, width = (_first(ds.WindowCenter), _first(ds.WindowWidth))
    if width <= 0:
        return _rescale(values.astype(np.float32)), None
    function = str(getattr(ds, "VOILUTFunction", "LINEAR")).upper()
    return window_level(values, center, width, function), (center, width)


def _first(value: Any) -> float:
    """The first of a multi-valued DICOM number (a window may list several)."""
    if isinstance(value, (str, bytes)):
        return float(value)
    return float(value[0]) if isinstance(value, Sequence) else float(value)


def window_level(values: np.ndarray, center: float, width: float, function: str = "LINEAR") -> np.ndarray:
    """Map modality values to [0, 1] through a window (DICOM PS3.3 C.11.2.1.2: LINEAR, LINEAR_EXACT, SIGMOID)."""
    if width <= 0 or (function == "LINEAR" and width < 1):
        raise ImageReadError(f"window width must be positive (LINEAR needs >= 1), got {width}")
    values = np.asarray(values, dtype=np.float64)
    if function == "SIGMOID":
        out = 1.0 / (1.0 + np.exp(-4.0 * (values - center) / width))
    elif function == "LINEAR_EXACT":
        out = (values - center) / width + 0.5
    else:
        out = (values - (center - 0.5)) / (width - 1.0) + 0.5
    return np.clip(out, 0.0, 1.0).astype(np.float32)


def _short(error: BaseException) -> str:
    text = " ".join(str(error).split()) or type(error).__name__
    return text if len(text) <= 200 else text[:197] + "..."


# --------------------------------------------------------------------------------------------
# Conversions at the display/file boundary
# --------------------------------------------------------------------------------------------

def to_uint8(pixels: np.ndarray) -> np.ndarray:
    """Contract pixels -> uint8 (rounding)."""
    return np.round(np.clip(pixels, 0.0, 1.0) * 255.0).astype(np.uint8)


def to_model_batch(images: np.ndarray, device):
    """uint8 N x H x W x 3 -> float tensor N x 3 x H x W in [-1, 1]: the model boundary of the VAE and the oracle."""
    import torch

    tensor = torch.from_numpy(images).to(device).permute(0, 3, 1, 2).float()
    return tensor / 127.5 - 1.0


def to_uint16(pixels: np.ndarray) -> np.ndarray:
    """Contract pixels -> uint16 (rounding)."""
    return np.round(np.clip(pixels, 0.0, 1.0) * 65535.0).astype(np.uint16)


def uint8_rgb(image: np.ndarray, size: int) -> np.ndarray:
    """Contract floats (clipped) or uint8, gray or RGB, any size -> uint8 (size, size, 3), resized bilinearly: what
    the classifiers (the oracle, an audited classifier) read."""
    image = np.asarray(image)
    if image.dtype != np.uint8:
        image = to_uint8(np.clip(image, 0.0, 1.0).astype(np.float32))
    if image.ndim == 2:
        image = np.repeat(image[..., None], 3, axis=-1)
    if image.shape[:2] != (size, size):
        image = np.asarray(Image.fromarray(image).resize((size, size), Image.BILINEAR))
    return image


def as_rgb(pixels: np.ndarray) -> np.ndarray:
    """(H, W) or (H, W, 3) -> (H, W, 3), repeating gray."""
    return np.repeat(pixels[..., None], 3, axis=2) if pixels.ndim == 2 else pixels


# --------------------------------------------------------------------------------------------
# Writing
# --------------------------------------------------------------------------------------------

def _parameters_line(parameters: Mapping[str, Any]) -> str:
    """A1111-style 'prompt\\nKey: value, Key: value' line (what other tools expect in 'parameters')."""
    prompt = str(parameters.get("prompt", ""))
    negative = parameters.get("negative_prompt")
    rest = ", ".join(f"{k.replace('_', ' ').capitalize()}: {v}" for k, v in parameters.items()
                     if k not in ("prompt", "negative_prompt"))
    lines = [prompt] + ([f"Negative prompt: {negative}"] if negative else []) + ([rest] if rest else [])
    return "\n".join(lines)


def write_png(path: str | os.PathLike, pixels: np.ndarray, parameters: Mapping[str, Any] | None = None,
              bit_depth: int = 8) -> Path:
    """Write contract pixels as PNG with generation parameters and the research-only mark in text chunks.

    Args:
        path: destination file.
        pixels: float32 (H, W) or (H, W, 3) in [0, 1].
        parameters: JSON-serialisable generation parameters (prompt, seed, steps, ...), stored both as
            an A1111-style ``parameters`` chunk and as JSON in a ``medviz`` chunk.
        bit_depth: 8, or 16 for grayscale.
    """
    check_contract(pixels)
    if bit_depth not in (8, 16):
        raise ValueError(f"bit_depth must be 8 or 16, got {bit_depth}")
    if bit_depth == 16 and pixels.ndim == 3:
        raise ValueError("16-bit PNG is written for grayscale images only")
    image = Image.fromarray(to_uint16(pixels)) if bit_depth == 16 else Image.fromarray(to_uint8(pixels))
    info = PngImagePlugin.PngInfo()
    parameters = dict(parameters or {})
    info.add_itxt(PNG_PARAMETERS_KEY, _parameters_line(parameters))
    info.add_itxt(PNG_METADATA_KEY, json.dumps(parameters, sort_keys=True, default=str))
    info.add_itxt("Disclaimer", RESEARCH_ONLY_NOTICE)
    info.add_itxt("Software", f"medviz {__version__}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path, format="PNG", pnginfo=info, compress_level=4)
    return path


def read_png_parameters(path: str | os.PathLike) -> dict[str, Any]:
    """The JSON parameters written by ``write_png`` (empty if absent)."""
    with Image.open(path) as image:
        text = image.info.get(PNG_METADATA_KEY)
    return json.loads(text) if text else {}


def write_dicom(path: str | os.PathLike, pixels: np.ndarray, parameters: Mapping[str, Any] | None = None,
                description: str = "medviz synthetic image") -> Path:
    """Write contract pixels as a DICOM Secondary Capture (DERIVED\\SECONDARY) with fresh UIDs.

    No attribute of any source file is copied: patient and study modules are left empty (type 2) and
    the research-only notice and the parameters go into ImageComments. Grayscale is stored as 16-bit
    MONOCHROME2 with a full-range window; RGB as 8-bit.
    """
    import pydicom
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import PYDICOM_IMPLEMENTATION_UID, ExplicitVRLittleEndian, generate_uid

    check_contract(pixels)
    now = datetime.datetime.now(datetime.UTC)
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = SECONDARY_CAPTURE_SOP_CLASS
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
    ds = Dataset()
    ds.file_meta = meta
    ds.SpecificCharacterSet = "ISO_IR 192"
    ds.SOPClassUID = SECONDARY_CAPTURE_SOP_CLASS
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.StudyInstanceUID = generate_uid()
    ds.SeriesInstanceUID = generate_uid()
    ds.ImageType = ["DERIVED", "SECONDARY"]
    ds.Modality = "OT"
    ds.ConversionType = "SYN"                      # synthetic image
    ds.BurnedInAnnotation = "NO"
    for keyword in ("PatientName", "PatientID", "PatientBirthDate", "PatientSex", "StudyDate", "StudyTime",
                    "ReferringPhysicianName", "StudyID", "AccessionNumber"):
        setattr(ds, keyword, "")
    ds.SeriesNumber = 1
    ds.InstanceNumber = 1
    ds.ContentDate = now.strftime("%Y%m%d")
    ds.ContentTime = now.strftime("%H%M%S")
    ds.Manufacturer = "medviz"
    ds.SoftwareVersions = __version__
    ds.SeriesDescription = description[:64]
    ds.DerivationDescription = (description + " — " + RESEARCH_ONLY_NOTICE)[:1024]
    ds.ImageComments = (RESEARCH_ONLY_NOTICE + "\n" + json.dumps(dict(parameters or {}), sort_keys=True, default=str))[
        :10240
    ]
    ds.Rows, ds.Columns = pixels.shape[:2]
    if pixels.ndim == 2:
        stored = to_uint16(pixels)
        ds.SamplesPerPixel = 1
        ds.PhotometricInterpretation = "MONOCHROME2"
        ds.BitsAllocated = ds.BitsStored = 16
        ds.HighBit = 15
        ds.WindowCenter = 32767.5
        ds.WindowWidth = 65536
    else:
        stored = to_uint8(pixels)
        ds.SamplesPerPixel = 3
        ds.PhotometricInterpretation = "RGB"
        ds.PlanarConfiguration = 0
        ds.BitsAllocated = ds.BitsStored = 8
        ds.HighBit = 7
    ds.PixelRepresentation = 0
    ds.PixelData = stored.tobytes()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    pydicom.dcmwrite(path, ds, enforce_file_format=True)
    return path
