import io
import json
import struct
import zlib
from pathlib import Path

import numpy as np
import pydicom
import pydicom.data
import pytest
from PIL import Image

from medviz import RESEARCH_ONLY_NOTICE
from medviz.io import (ImageReadError, MedicalImage, from_array, read_image, read_png_parameters, window_level,
                       write_dicom, write_png)

PYDICOM_DATA = Path(pydicom.data.__file__).parent
NOT_IMAGES = {".py", ".pyc", ".json", ".md", ".txt", ".dump"}


def shipped_pydicom_files():
    return sorted(p for p in PYDICOM_DATA.rglob("*")
                  if p.is_file() and p.suffix not in NOT_IMAGES and p.name != "README" and "__pycache__" not in p.parts)


def test_pydicom_ships_test_data():
    assert len(shipped_pydicom_files()) > 80


@pytest.mark.parametrize("path", shipped_pydicom_files(), ids=lambda p: str(p.relative_to(PYDICOM_DATA)))
def test_every_pydicom_test_file_loads_or_gives_a_clear_message(path):
    try:
        image = read_image(path)
    except ImageReadError as error:
        message = str(error)
        assert message.startswith(path.name + ":"), message
        assert "\n" not in message and len(message) < 400
        return
    assert isinstance(image, MedicalImage)
    pixels = image.pixels
    assert pixels.dtype == np.float32 and pixels.flags.c_contiguous
    assert pixels.ndim == 2 or (pixels.ndim == 3 and pixels.shape[2] == 3)
    assert 0.0 <= pixels.min() <= pixels.max() <= 1.0


def test_known_pydicom_files_decode_to_expected_content():
    ct = read_image(PYDICOM_DATA / "test_files" / "CT_small.dcm")
    assert ct.pixels.shape == (128, 128) and ct.info.source_format == "DICOM"
    assert ct.pixels.std() > 0.05                                   # a real picture, not a flat field
    # The same RGB test pattern stored as 32-bit RLE and as JPEG 2000 decodes to the same colours.
    rle32 = read_image(PYDICOM_DATA / "test_files" / "SC_rgb_rle_32bit.dcm")
    jpeg2000 = read_image(PYDICOM_DATA / "test_files" / "SC_rgb_gdcm_KY.dcm")
    assert rle32.pixels.shape == jpeg2000.pixels.shape == (100, 100, 3)
    assert np.abs(rle32.pixels - jpeg2000.pixels).max() <= 1.5 / 255
    assert rle32.pixels[..., 0].max() > 0.99 and rle32.pixels.min() < 0.01
    # JPEG 2000 goes through the pylibjpeg-openjpeg plugin and matches the uncompressed original.
    raw = read_image(PYDICOM_DATA / "test_files" / "MR_small.dcm")
    j2k = read_image(PYDICOM_DATA / "test_files" / "MR_small_jp2klossless.dcm")
    assert np.array_equal(raw.pixels, j2k.pixels)
    for name in ("MR_small_RLE.dcm", "MR_small_jpeg_ls_lossless.dcm", "MR_small_bigendian.dcm"):
        assert np.array_equal(raw.pixels, read_image(PYDICOM_DATA / "test_files" / name).pixels), name
    assert raw.info.window == (600.0, 1600.0)


def _dicom_dataset(array, photometric="MONOCHROME2", **extra):
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.1"
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = meta.MediaStorageSOPClassUID
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.PatientName = "Test^Patient"
    ds.Rows, ds.Columns = array.shape[-2:]
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = photometric
    ds.BitsAllocated = ds.BitsStored = 16
    ds.HighBit = 15
    ds.PixelRepresentation = 0
    for key, value in extra.items():
        setattr(ds, key, value)
    ds.PixelData = array.astype(np.uint16).tobytes()
    return ds


def test_dicom_monochrome1_is_inverted_and_window_applied(tmp_path):
    ramp = np.tile(np.arange(0, 1000, 10, dtype=np.uint16), (20, 1))
    path = tmp_path / "mono1.dcm"
    _dicom_dataset(ramp, "MONOCHROME1", WindowCenter=500, WindowWidth=1000,
                   RescaleSlope=1, RescaleIntercept=0).save_as(path, enforce_file_format=True)
    image = read_image(path)
    assert image.info.inverted and image.info.window == (500.0, 1000.0)
    assert image.pixels[0, 0] > 0.99 and image.pixels[0, -1] < 0.02   # low values display white
    # A caller's window overrides the file's.
    narrow = read_image(path, window=(500, 200))
    assert narrow.pixels[0, 0] == 1.0 and narrow.pixels[0, 70] == 0.0
    assert np.allclose(window_level(np.array([400.0, 500.0, 600.0]), 500, 201), [0.0, 0.5, 1.0], atol=0.01)


def test_crafted_bad_files_give_clear_messages(tmp_path):
    # Truncated PNG.
    good = tmp_path / "good.png"
    Image.fromarray((np.random.default_rng(0).random((64, 64)) * 255).astype(np.uint8)).save(good)
    truncated = tmp_path / "truncated.png"
    truncated.write_bytes(good.read_bytes()[:300])
    with pytest.raises(ImageReadError, match="truncated.png: the PNG data is truncated or corrupt"):
        read_image(truncated)
    # Text renamed .png.
    text = tmp_path / "notes.png"
    text.write_text("this is a radiology report, not an image\n")
    with pytest.raises(ImageReadError, match="notes.png: not a recognised image"):
        read_image(text)
    # A PNG header claiming 50,000 x 50,000 pixels (a decompression bomb); refused before decoding.
    def chunk(kind, payload):
        return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))
    bomb = tmp_path / "bomb.png"
    bomb.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 50000, 50000, 8, 0, 0, 0, 0))
                     + chunk(b"IDAT", zlib.compress(b"\0" * 1000)) + chunk(b"IEND", b""))
    with pytest.raises(ImageReadError, match=r"bomb.png: too many pixels \(50000 x 50000"):
        read_image(bomb)
    with pytest.raises(ImageReadError, match="too many pixels"):
        read_image(good, max_pixels=1000)
    # 3-D DICOM volume.
    volume = _dicom_dataset(np.zeros((4, 16, 16), np.uint16), NumberOfFrames=4)
    volume.save_as(tmp_path / "volume.dcm", enforce_file_format=True)
    with pytest.raises(ImageReadError, match="volume.dcm: multi-frame DICOM with 4 frames"):
        read_image(tmp_path / "volume.dcm")
    # A 50k x 50k DICOM header.
    huge = _dicom_dataset(np.zeros((2, 2), np.uint16))
    huge.Rows = huge.Columns = 50000
    huge.save_as(tmp_path / "huge.dcm", enforce_file_format=True)
    with pytest.raises(ImageReadError, match="huge.dcm: too many pixels"):
        read_image(tmp_path / "huge.dcm")
    # Missing and empty files.
    with pytest.raises(ImageReadError, match="no such file"):
        read_image(tmp_path / "absent.png")
    (tmp_path / "empty.png").write_bytes(b"")
    with pytest.raises(ImageReadError, match="empty"):
        read_image(tmp_path / "empty.png")
    # Multi-frame TIFF.
    frames = [Image.fromarray(np.full((8, 8), v, np.uint8)) for v in (0, 255)]
    frames[0].save(tmp_path / "stack.tif", save_all=True, append_images=frames[1:])
    with pytest.raises(ImageReadError, match="2 frames"):
        read_image(tmp_path / "stack.tif")


def test_raster_formats_map_into_the_contract(tmp_path):
    gray16 = (np.arange(64 * 64).reshape(64, 64) * 16).astype(np.uint16)
    Image.fromarray(gray16).save(tmp_path / "g16.png")
    image = read_image(tmp_path / "g16.png")
    assert image.pixels.shape == (64, 64) and image.info.bits == 16
    assert np.allclose(image.pixels, gray16 / 65535.0, atol=1e-6)
    Image.fromarray(gray16).save(tmp_path / "g16.tif")
    assert np.allclose(read_image(tmp_path / "g16.tif").pixels, gray16 / 65535.0, atol=1e-6)
    # Grayscale saved as RGB collapses to (H, W); real colour stays (H, W, 3).
    gray8 = (np.arange(256, dtype=np.uint8)[None].repeat(16, 0))
    Image.fromarray(np.stack([gray8] * 3, -1)).save(tmp_path / "rgbgray.png")
    assert read_image(tmp_path / "rgbgray.png").pixels.shape == (16, 256)
    colour = np.zeros((8, 8, 3), np.uint8)
    colour[..., 0] = 200
    Image.fromarray(colour).save(tmp_path / "red.jpg", quality=95)
    assert read_image(tmp_path / "red.jpg").pixels.shape == (8, 8, 3)
    # RGBA composites over black; palette expands.
    rgba = np.zeros((4, 4, 4), np.uint8)
    rgba[..., :3] = 255
    rgba[..., 3] = 128
    Image.fromarray(rgba, "RGBA").save(tmp_path / "alpha.png")
    assert np.allclose(read_image(tmp_path / "alpha.png").pixels, 128 / 255, atol=1 / 255)
    Image.fromarray(gray8).convert("P").save(tmp_path / "palette.png")
    assert np.allclose(read_image(tmp_path / "palette.png").pixels, gray8 / 255.0, atol=1 / 255)
    # EXIF orientation 6 (rotate 90 CW on display) is applied.
    tall = np.zeros((10, 20), np.uint8)
    tall[:, :5] = 255
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.fromarray(tall).save(tmp_path / "rotated.jpg", exif=exif, quality=100)
    rotated = read_image(tmp_path / "rotated.jpg").pixels
    assert rotated.shape == (20, 10) and rotated[:5].mean() > 0.9 and rotated[-5:].mean() < 0.1
    # Bytes and file objects work like paths.
    data = (tmp_path / "g16.png").read_bytes()
    assert np.array_equal(read_image(data).pixels, read_image(io.BytesIO(data)).pixels)


def test_png_export_round_trips_with_parameters_and_notice(tmp_path):
    pixels = np.random.default_rng(1).random((32, 48)).astype(np.float32)
    parameters = {"prompt": "chest X-ray showing pleural effusion", "seed": 7, "steps": 25, "guidance_scale": 7.5}
    path = write_png(tmp_path / "out.png", pixels, parameters)
    back = read_image(path)
    assert np.abs(back.pixels - pixels).max() <= 0.5 / 255 + 1e-6
    assert read_png_parameters(path) == parameters
    assert back.metadata["Disclaimer"] == RESEARCH_ONLY_NOTICE
    assert back.metadata["parameters"].startswith("chest X-ray showing pleural effusion\n")
    assert "Seed: 7" in back.metadata["parameters"]
    path16 = write_png(tmp_path / "out16.png", pixels, parameters, bit_depth=16)
    assert np.abs(read_image(path16).pixels - pixels).max() <= 0.5 / 65535 + 1e-6
    rgb = np.random.default_rng(2).random((16, 16, 3)).astype(np.float32)
    assert np.abs(read_image(write_png(tmp_path / "rgb.png", rgb)).pixels - rgb).max() <= 0.5 / 255 + 1e-6
    with pytest.raises(ValueError, match="within"):
        write_png(tmp_path / "bad.png", pixels * 2)


def test_dicom_secondary_capture_round_trips_without_patient_data(tmp_path):
    pixels = np.random.default_rng(3).random((40, 30)).astype(np.float32)
    first = write_dicom(tmp_path / "a.dcm", pixels, {"edit": "remove pacemaker", "seed": 3})
    second = write_dicom(tmp_path / "b.dcm", pixels)
    back = read_image(first)
    assert back.pixels.shape == (40, 30)
    assert np.abs(back.pixels - pixels).max() < 3e-5
    ds = pydicom.dcmread(first)
    assert ds.SOPClassUID == "1.2.840.10008.5.1.4.1.1.7"
    assert list(ds.ImageType) == ["DERIVED", "SECONDARY"]
    assert ds.PatientName == "" and ds.PatientID == "" and ds.PatientBirthDate == ""
    assert RESEARCH_ONLY_NOTICE in ds.ImageComments
    assert json.loads(ds.ImageComments.split("\n", 1)[1]) == {"edit": "remove pacemaker", "seed": 3}
    other = pydicom.dcmread(second)
    assert other.SOPInstanceUID != ds.SOPInstanceUID and other.StudyInstanceUID != ds.StudyInstanceUID
    rgb = np.random.default_rng(4).random((10, 12, 3)).astype(np.float32)
    back_rgb = read_image(write_dicom(tmp_path / "rgb.dcm", rgb)).pixels
    assert back_rgb.shape == (10, 12, 3) and np.abs(back_rgb - rgb).max() <= 0.5 / 255 + 1e-6


def test_contract_is_enforced():
    with pytest.raises(ValueError, match="float32"):
        MedicalImage(np.zeros((4, 4)), None)
    with pytest.raises(ValueError, match="shape"):
        from_array(np.zeros((4, 4, 2), np.float32))
    assert from_array(np.full((2, 2), 255, np.uint8)).pixels.max() == 1.0


def test_max_side_reduces_a_huge_image_right_after_decoding(tmp_path):
    import resource

    bilevel = np.zeros((6000, 4000), bool)
    bilevel[1000:3000, 1000:3000] = True                     # a white square on black, stored at 1 bit per pixel
    Image.fromarray(bilevel).save(tmp_path / "huge.png", optimize=True)
    assert (tmp_path / "huge.png").stat().st_size < 20_000
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    image = read_image(tmp_path / "huge.png", max_side=128)
    grown_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    assert image.pixels.shape == (128, 85) and image.info.original_shape[:2] == (6000, 4000)
    assert image.info.notes[-1] == "reduced from 4000×6000 to 85×128 on reading"
    assert grown_mb < 150                                      # 24 M pixels as float32 alone would be 96 MB
    assert image.pixels[40, 40] == pytest.approx(1.0) and image.pixels[5, 5] == 0.0
    small = read_image(tmp_path / "huge.png", max_side=8000)   # already small enough: untouched
    assert small.pixels.shape == (6000, 4000) and not small.info.notes


def test_max_side_reduces_jpeg_16_bit_and_dicom_alike(tmp_path):
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 255, (600, 800, 3), dtype=np.uint8)).save(tmp_path / "photo.jpg")
    jpeg = read_image(tmp_path / "photo.jpg", max_side=100)
    assert jpeg.pixels.shape == (75, 100, 3) and jpeg.info.original_shape[:2] == (600, 800)
    Image.fromarray(np.full((300, 300), 40000, np.uint16)).save(tmp_path / "deep.png")
    deep = read_image(tmp_path / "deep.png", max_side=30)
    assert deep.pixels.shape == (30, 30) and deep.pixels.max() == pytest.approx(40000 / 65535, abs=1e-4)
    dicom = read_image(pydicom.data.get_testdata_file("CT_small.dcm"), max_side=32)
    assert dicom.pixels.shape == (32, 32) and "reduced from 128×128 to 32×32 on reading" in dicom.info.notes
