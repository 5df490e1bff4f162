"""Synthetic DICOM files made with pydicom: a CT, an MR, an ultrasound with the patient's name and birth
date burned into its pixels, a multi-frame series, compressed ones (JPEG 2000, RLE), and broken ones. Each
carries the same made-up patient, whose identifiers ``IDENTIFIERS`` lists in every spelling a byte scan
should look for."""

from __future__ import annotations

from pathlib import Path

import numpy as np

PATIENT_NAME = "Quixote^Dulcinea^Maria"
PATIENT_ID = "MRN-77410923"
BIRTH_DATE = "19610302"
ACCESSION = "ACC-5518820"
INSTITUTION = "Saint Barnabas Teaching Hospital"
REFERRING = "Rocinante^Sancho"
STUDY_UID = "1.2.826.0.1.3680043.8.498.10011001"
SERIES_UID = "1.2.826.0.1.3680043.8.498.10011002"
STUDY_DATE = "20240917"
BURNED_NAME = "QUIXOTE DULCINEA"
BURNED_DATE = "1961-03-02"
PRIVATE_TEXT = "HOSPITAL-INTERNAL-NOTE-4471"

# Every original identifier, as a byte scan of disk and a look at the prompt must never find it again.
IDENTIFIERS = ["Quixote", "Dulcinea", "QUIXOTE", "DULCINEA", PATIENT_ID, "77410923", BIRTH_DATE, BURNED_DATE,
               ACCESSION, INSTITUTION, "Barnabas", "Rocinante", "Sancho", STUDY_UID, SERIES_UID, STUDY_DATE,
               PRIVATE_TEXT]


def _dataset(modality: str, rows: int, columns: int, *, uid_suffix: str, photometric: str = "MONOCHROME2",
             samples: int = 1, bits: int = 16, signed: bool = False, frames: int = 1):
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    sop_class = {"CT": "1.2.840.10008.5.1.4.1.1.2", "MR": "1.2.840.10008.5.1.4.1.1.4",
                 "US": "1.2.840.10008.5.1.4.1.1.6.1", "XA": "1.2.840.10008.5.1.4.1.1.12.1"}[modality]
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = sop_class
    meta.MediaStorageSOPInstanceUID = f"1.2.826.0.1.3680043.8.498.1001{uid_suffix}"
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    meta.ImplementationClassUID = generate_uid()
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = sop_class
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.StudyInstanceUID = STUDY_UID
    ds.SeriesInstanceUID = SERIES_UID
    ds.FrameOfReferenceUID = f"1.2.826.0.1.3680043.8.498.1009{uid_suffix}"
    ds.PatientName = PATIENT_NAME
    ds.PatientID = PATIENT_ID
    ds.PatientBirthDate = BIRTH_DATE
    ds.PatientSex = "F"
    ds.PatientAge = "063Y"
    ds.AccessionNumber = ACCESSION
    ds.InstitutionName = INSTITUTION
    ds.ReferringPhysicianName = REFERRING
    ds.StudyDate = STUDY_DATE
    ds.SeriesDate = STUDY_DATE
    ds.StudyTime = "101500"
    ds.Modality = modality
    ds.BodyPartExamined = {"CT": "CHEST", "MR": "HEAD", "US": "ABDOMEN", "XA": "HEART"}[modality]
    ds.StudyDescription = f"{modality} follow-up for Dulcinea Quixote"
    ds.SeriesDescription = {"CT": "Axial lung window", "MR": "T2 FLAIR", "US": "Liver survey",
                            "XA": "Coronary run"}[modality]
    ds.Manufacturer = "Synthetic Imaging"
    ds.PatientComments = "prefers the morning appointments"
    private = ds.private_block(0x0011, "HOSPITAL PRIVATE", create=True)
    private.add_new(0x01, "LO", PRIVATE_TEXT)
    ds.Rows, ds.Columns = rows, columns
    ds.SamplesPerPixel = samples
    ds.PhotometricInterpretation = photometric
    if samples == 3:
        ds.PlanarConfiguration = 0
    ds.BitsAllocated = bits
    ds.BitsStored = bits
    ds.HighBit = bits - 1
    ds.PixelRepresentation = 1 if signed else 0
    if frames > 1:
        ds.NumberOfFrames = frames
    return ds


def _disc(rows: int, columns: int, inside: float, outside: float) -> np.ndarray:
    y, x = np.mgrid[0:rows, 0:columns]
    inside_disc = (y - rows / 2) ** 2 + (x - columns / 2) ** 2 < (min(rows, columns) / 3) ** 2
    return np.where(inside_disc, inside, outside)


def ct(path: Path) -> Path:
    """A 16-bit signed CT slice in Hounsfield units (rescale -1024), with a lung window."""
    ds = _dataset("CT", 256, 256, uid_suffix="1", signed=True)
    ds.RescaleIntercept, ds.RescaleSlope = -1024, 1
    ds.WindowCenter, ds.WindowWidth = -600, 1500
    stored = (_disc(256, 256, 40, -900) + 1024).astype(np.int16)
    ds.PixelData = stored.tobytes()
    ds.save_as(path, enforce_file_format=True)
    return path


def mr(path: Path) -> Path:
    """An unsigned 12-bit MR slice without a window (the percentile range shows it)."""
    ds = _dataset("MR", 192, 160, uid_suffix="2")
    ds.BitsStored, ds.HighBit = 12, 11
    ds.PixelData = _disc(192, 160, 3000, 200).astype(np.uint16).tobytes()
    ds.save_as(path, enforce_file_format=True)
    return path


def burned_in_image(rows: int = 480, columns: int = 640) -> np.ndarray:
    """An RGB ultrasound-like frame with the patient's name and birth date burned into a banner."""
    from PIL import Image, ImageDraw, ImageFont

    image = Image.fromarray(_disc(rows, columns, 140, 15).astype(np.uint8)).convert("RGB")
    draw = ImageDraw.Draw(image)
    font = ImageFont.load_default(size=24)
    draw.text((16, 12), BURNED_NAME, fill=(255, 255, 255), font=font)
    draw.text((16, 44), f"DOB {BURNED_DATE}", fill=(255, 255, 255), font=font)
    draw.text((columns - 200, rows - 40), "MI 0.8  TIS 0.4", fill=(230, 230, 230), font=font)
    return np.asarray(image)


def ultrasound(path: Path) -> Path:
    """An 8-bit RGB ultrasound frame whose pixels carry the patient's name and birth date."""
    ds = _dataset("US", 480, 640, uid_suffix="3", photometric="RGB", samples=3, bits=8)
    ds.BurnedInAnnotation = "YES"
    ds.PixelData = burned_in_image().tobytes()
    ds.save_as(path, enforce_file_format=True)
    return path


def multiframe(path: Path, frames: int = 9) -> Path:
    """An 8-bit XA cine of ``frames`` frames; frame i is filled with the value 20 * i, so which one was shown
    can be told from its pixels (the window shows 0..255 as they are)."""
    ds = _dataset("XA", 64, 64, uid_suffix="4", bits=8, frames=frames)
    ds.WindowCenter, ds.WindowWidth = 128, 256
    ds.PixelData = np.stack([np.full((64, 64), 20 * i, dtype=np.uint8) for i in range(frames)]).tobytes()
    ds.save_as(path, enforce_file_format=True)
    return path


def compressed(path: Path, syntax: str = "jpeg2000") -> Path:
    """The CT, its pixels compressed losslessly: ``jpeg2000`` (OpenJPEG) or ``rle`` (pydicom's own)."""
    from pydicom import dcmread
    from pydicom.uid import JPEG2000Lossless, RLELossless

    ct(path)
    ds = dcmread(path)
    ds.compress(JPEG2000Lossless if syntax == "jpeg2000" else RLELossless)
    ds.save_as(path, enforce_file_format=True)
    return path


def without_pixels(path: Path) -> Path:
    ds = _dataset("CT", 64, 64, uid_suffix="5")
    ds.save_as(path, enforce_file_format=True)
    return path


def truncated(path: Path) -> Path:
    ct(path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 3])
    return path


def not_dicom(path: Path) -> Path:
    path.write_bytes(b"\x00" * 128 + b"NOPE" + b"this is not a DICOM file at all" * 10)
    return path


def unsupported_compression(path: Path) -> Path:
    """The CT claiming JPEG-LS pixels (decoded by no package this product installs)."""
    from pydicom import dcmread
    from pydicom.encaps import encapsulate
    from pydicom.uid import JPEGLSLossless

    ct(path)
    ds = dcmread(path)
    ds.file_meta.TransferSyntaxUID = JPEGLSLossless
    ds.PixelData = encapsulate([b"\xff\xd8\xff\xf7" + b"\x00" * 64])
    ds["PixelData"].VR = "OB"
    ds.save_as(path, enforce_file_format=True)
    return path


def all_of(folder: Path) -> dict[str, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    return {"ct": ct(folder / "ct.dcm"), "mr": mr(folder / "mr.dcm"), "us": ultrasound(folder / "us.dcm"),
            "cine": multiframe(folder / "cine.dcm"), "j2k": compressed(folder / "j2k.dcm", "jpeg2000"),
            "rle": compressed(folder / "rle.dcm", "rle")}
