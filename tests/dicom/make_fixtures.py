"""Writes the DICOM test fixtures from NIH chest X-ray PNGs with pydicom.

    python tests/dicom/make_fixtures.py OUT_DIR PNG

Each file holds the same picture as PNG, so that a reader that follows the
DICOM pixel pipeline (Modality LUT, VOI LUT or window, MONOCHROME1) gets the
PNG's grey levels back exactly, except the lossy JPEG one. `manifest.json`
in OUT_DIR lists every file with what a reader should make of it.
"""

import datetime
import io
import json
import pathlib
import sys

import numpy as np
from PIL import Image
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.encaps import encapsulate
from pydicom.uid import (
    DeflatedExplicitVRLittleEndian,
    DigitalXRayImageStorageForPresentation,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    JPEG2000Lossless,
    JPEGBaseline8Bit,
    JPEGLSLossless,
    RLELossless,
    generate_uid,
)

# Identifiers a reader must keep on the user's screen only.
PATIENT = {
    "PatientName": "Fixture^Jane",
    "PatientID": "NIH-00000061",
    "PatientBirthDate": "19550101",
    "AccessionNumber": "ACC123456",
    "StudyDate": "20261203",
}


def base(pixels: np.ndarray, bits: int, view: str = "PA") -> Dataset:
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = DigitalXRayImageStorageForPresentation
    ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.SOPClassUID = DigitalXRayImageStorageForPresentation
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID
    ds.StudyInstanceUID = "1.2.826.0.1.3680043.8.498.1"
    ds.SeriesInstanceUID = generate_uid()
    for key, value in PATIENT.items():
        setattr(ds, key, value)
    ds.Modality = "DX"
    ds.PresentationIntentType = "FOR PRESENTATION"
    ds.BodyPartExamined = "CHEST"
    ds.ViewPosition = view
    ds.PatientOrientation = ["A", "F"] if view == "LL" else ["L", "F"]
    ds.Rows, ds.Columns = pixels.shape[-2:]
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated = 8 if bits == 8 else 16
    ds.BitsStored = bits
    ds.HighBit = bits - 1
    ds.PixelRepresentation = 0
    ds.PixelData = pixels.astype(np.uint8 if bits == 8 else np.uint16).tobytes()
    ds.ContentDate = datetime.date.today().strftime("%Y%m%d")
    return ds


def identity_window(ds: Dataset) -> Dataset:
    # LINEAR with centre 128 and width 256 maps 0..255 onto itself.
    ds.WindowCenter = 128
    ds.WindowWidth = 256
    return ds


def main() -> None:
    out, png = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])
    out.mkdir(parents=True, exist_ok=True)
    grey = np.asarray(Image.open(png).convert("L"))
    manifest = {"png": str(png.resolve()), "files": []}

    def write(name: str, ds: Dataset, expect: str, **extra) -> None:
        ds.save_as(out / name, enforce_file_format=True)
        manifest["files"].append({"file": name, "expect": expect, **extra})

    write("mono2-8bit.dcm", identity_window(base(grey, 8)), "same")

    implicit = identity_window(base(grey, 8))
    implicit.file_meta.TransferSyntaxUID = ImplicitVRLittleEndian
    write("implicit-vr.dcm", implicit, "same")

    deflated = identity_window(base(grey, 8))
    deflated.file_meta.TransferSyntaxUID = DeflatedExplicitVRLittleEndian
    write("deflated.dcm", deflated, "same")

    # 12 bits stored, rescaled to modality values 8 x - 1024, and a
    # LINEAR_EXACT window over exactly that range.
    wide = base(grey.astype(np.uint16) * 16, 12)
    wide.RescaleSlope = 0.5
    wide.RescaleIntercept = -1024
    wide.WindowCenter = -4
    wide.WindowWidth = 2040
    wide.VOILUTFunction = "LINEAR_EXACT"
    write("mono2-16bit-rescale.dcm", wide, "same")

    # A VOI LUT table instead of a window: entries 0..255 for stored values
    # 1000..1255 (12 bits stored), declared 16 bits per entry.
    table = base(grey.astype(np.uint16) + 1000, 12)
    item = Dataset()
    item.LUTDescriptor = [256, 1000, 16]
    item.LUTData = np.arange(256, dtype="<u2").tobytes()
    item.LUTExplanation = "fixture"
    table.VOILUTSequence = [item]
    write("voi-lut-table.dcm", table, "same")

    mono1 = identity_window(base(255 - grey, 8))
    mono1.PhotometricInterpretation = "MONOCHROME1"
    write("mono1.dcm", mono1, "same")

    rle = identity_window(base(grey, 8))
    rle.compress(RLELossless)
    write("rle.dcm", rle, "same")

    j2k = identity_window(base(grey, 8))
    j2k.compress(JPEG2000Lossless)
    write("jpeg2000-lossless.dcm", j2k, "same")

    jpeg = identity_window(base(grey, 8))
    buffer = io.BytesIO()
    Image.fromarray(grey).save(buffer, format="JPEG", quality=95)
    jpeg.PixelData = encapsulate([buffer.getvalue()])
    jpeg["PixelData"].VR = "OB"
    jpeg.file_meta.TransferSyntaxUID = JPEGBaseline8Bit
    jpeg.LossyImageCompression = "01"
    write("jpeg-baseline.dcm", jpeg, "close")
    (out / "jpeg-baseline.jpg").write_bytes(buffer.getvalue())

    frames = identity_window(base(np.stack([grey, 255 - grey]), 8))
    frames.NumberOfFrames = 2
    write("two-frames.dcm", frames, "same", frames=2)

    write("lateral.dcm", identity_window(base(grey, 8, view="LL")), "lateral")

    # Files a reader must refuse, each with its own message.
    jls = identity_window(base(grey, 8))
    jls.PixelData = encapsulate([b"\xff\xd8\xff\xf7" + b"\x00" * 64 + b"\xff\xd9"])
    jls["PixelData"].VR = "OB"
    jls.file_meta.TransferSyntaxUID = JPEGLSLossless
    write("jpeg-ls.dcm", jls, "refused", message="JPEG-LS")

    ct = identity_window(base(grey, 8))
    ct.Modality = "CT"
    write("ct.dcm", ct, "refused", message="modality is CT")

    rgb = base(grey, 8)
    rgb.SamplesPerPixel = 3
    rgb.PhotometricInterpretation = "RGB"
    rgb.PlanarConfiguration = 0
    rgb.PixelData = np.repeat(grey[..., None], 3, axis=2).tobytes()
    write("rgb.dcm", rgb, "refused", message="photometric interpretation is RGB")

    huge = identity_window(base(grey, 8))
    huge.Rows = huge.Columns = 60000
    write("huge.dcm", huge, "refused", message="pixels")

    short = identity_window(base(grey, 8))
    short.Rows = 1024
    write("short-pixel-data.dcm", short, "refused", message="the pixel data holds")

    whole = (out / "mono2-8bit.dcm").read_bytes()
    (out / "truncated.dcm").write_bytes(whole[: len(whole) // 2])
    manifest["files"].append({"file": "truncated.dcm", "expect": "refused", "message": "cut short"})

    (out / "manifest.json").write_text(json.dumps(manifest, indent=1))
    print(f"wrote {len(manifest['files'])} DICOM fixtures to {out}")


if __name__ == "__main__":
    main()
