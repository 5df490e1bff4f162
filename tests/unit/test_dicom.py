"""DICOM in: synthetic CT, MR, ultrasound (with the patient's name burned into the pixels), a multi-frame
cine and compressed files, made with pydicom; each de-identified before anything else sees it."""

import io
import os
import threading

import numpy as np
import pydicom
import pytest

from retrieval import dicom
from retrieval.errors import UnreadableFileError
from retrieval.loaders import ParseOptions, parse
from retrieval.ocr import read_text
from tests.helpers import dicoms

KEY = b"k" * 32


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    return dicoms.all_of(tmp_path_factory.mktemp("dicoms"))


def _bytes(ds) -> bytes:
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


def _found(data: bytes | str, identifiers=dicoms.IDENTIFIERS) -> list[str]:
    text = data if isinstance(data, str) else data.decode("latin-1")
    return [i for i in identifiers if i.lower() in text.lower()]


@pytest.mark.parametrize("name", ["ct", "mr", "us", "cine", "j2k", "rle"])
def test_no_identifier_survives_in_the_cleaned_header(files, name):
    original = files[name].read_bytes()
    assert len(_found(original)) >= 12  # the file really carries them: the scan below can fail
    ds = pydicom.dcmread(files[name])
    report = dicom.deidentify(ds, KEY)
    assert _found(_bytes(ds)) == []
    assert ds.PatientIdentityRemoved == "YES" and ds.DeidentificationMethod == dicom.METHOD
    assert str(ds.PatientName) == str(ds.PatientID) == dicom.pseudonym(KEY, dicoms.PATIENT_ID)
    assert not any(e.tag.is_private for e in ds.iterall())
    assert {"PatientBirthDate", "AccessionNumber", "InstitutionName", "ReferringPhysicianName",
            "PatientComments"} <= set(report.removed)
    assert report.private == 2 and report.uids == 4 and report.dates == 2
    assert ds.Modality and ds.BodyPartExamined and ds.SeriesDescription  # what the knowledge base indexes stays
    assert ds.StudyDescription == f"{ds.Modality} follow-up for [removed] [removed]"


def test_uids_dates_and_pseudonyms_are_consistent_per_patient_and_per_key(files):
    a, b = pydicom.dcmread(files["ct"]), pydicom.dcmread(files["mr"])
    dicom.deidentify(a, KEY)
    dicom.deidentify(b, KEY)
    assert a.StudyInstanceUID == b.StudyInstanceUID != dicoms.STUDY_UID  # one study, one new UID
    assert a.StudyInstanceUID.startswith("2.25.") and len(a.StudyInstanceUID) <= 64
    assert a.SOPInstanceUID != b.SOPInstanceUID
    assert a.file_meta.MediaStorageSOPInstanceUID == a.SOPInstanceUID
    assert a.SOPClassUID == "1.2.840.10008.5.1.4.1.1.2"  # a class UID names no one: kept
    assert a.StudyDate == b.StudyDate != dicoms.STUDY_DATE
    shift = dicom.date_shift(KEY, dicoms.PATIENT_ID)
    assert 1 <= shift <= dicom.MAX_DATE_SHIFT_DAYS
    assert (np.datetime64("2024-09-17") - np.datetime64(
        f"{a.StudyDate[:4]}-{a.StudyDate[4:6]}-{a.StudyDate[6:]}")).astype(int) == shift
    assert a.StudyTime == "101500"  # times stay
    other = pydicom.dcmread(files["ct"])
    dicom.deidentify(other, b"o" * 32)
    assert other.PatientName != a.PatientName and other.StudyInstanceUID != a.StudyInstanceUID


def test_burned_in_name_and_date_are_blacked_out(files):
    raw = dicoms.burned_in_image()
    from PIL import Image

    before = read_text(Image.fromarray(raw)).replace(" ", "")
    assert "QUIXOTE" in before.upper() and "1961-03-02" in before  # OCR reads it: the check below can fail
    scan = dicom.read(files["us"], KEY)
    after = read_text(scan.image).replace(" ", "")
    assert _found(after) == [] and "1961" not in after, after
    assert scan.report.text_regions >= 2
    pixels = np.asarray(scan.image)
    assert pixels[240, 320].mean() > 100  # the picture itself is still there
    assert "blacked out" in scan.report.summary()


def test_windowing_follows_the_header(files):
    scan = dicom.read(files["ct"], KEY)
    gray = np.asarray(scan.image.convert("L"))
    # lung window: centre -600, width 1500: -1350..150 HU. The disc is 40 HU, the rest -900 HU.
    assert abs(int(gray[128, 128]) - round((40 + 1350) / 1500 * 255)) <= 2
    assert abs(int(gray[5, 5]) - round((-900 + 1350) / 1500 * 255)) <= 2
    mr = np.asarray(dicom.read(files["mr"], KEY).image.convert("L"))  # no window: the range shown
    assert mr[96, 80] == 255 and mr[3, 3] == 0


def test_monochrome1_is_inverted(tmp_path):
    path = dicoms.mr(tmp_path / "m1.dcm")
    ds = pydicom.dcmread(path)
    ds.PhotometricInterpretation = "MONOCHROME1"
    ds.save_as(path)
    gray = np.asarray(dicom.read(path, KEY).image.convert("L"))
    assert gray[96, 80] == 0 and gray[3, 3] == 255


def test_a_multi_frame_series_shows_its_middle_frame_and_says_how_many(files):
    scan = dicom.read(files["cine"], KEY)
    assert (scan.frames, scan.frame, scan.locator) == (9, 4, "frame 5 of 9")
    assert "Frames: 9 (frame 5 shown)" in scan.text()
    gray = np.asarray(scan.image.convert("L"))
    assert abs(int(gray[48, 48]) - 80) <= 1  # frame i holds 20 * i


@pytest.mark.parametrize("name", ["j2k", "rle"])
def test_compressed_pixels_decode_as_the_uncompressed_ones(files, name):
    assert pydicom.dcmread(files[name]).file_meta.TransferSyntaxUID.is_compressed
    assert np.array_equal(np.asarray(dicom.read(files[name], KEY).image),
                          np.asarray(dicom.read(files["ct"], KEY).image))


@pytest.mark.parametrize("make, words", [
    (dicoms.without_pixels, "holds no image"),
    (dicoms.truncated, "truncated"),
    (dicoms.not_dicom, "not a DICOM file"),
    (dicoms.unsupported_compression, "JPEG-LS"),
])
def test_broken_files_get_a_clear_error(tmp_path, make, words):
    path = make(tmp_path / "scan.dcm")
    with pytest.raises(UnreadableFileError) as caught:
        parse(path, ParseOptions(deid_key=KEY))
    message = str(caught.value)
    assert message.startswith("scan.dcm: ") and words in message
    assert str(tmp_path) not in message and "Traceback" not in message


def test_the_knowledge_base_gets_the_cleaned_picture_and_header(files):
    parsed = parse(files["us"], ParseOptions(deid_key=KEY))
    assert parsed.kind == "dicom" and len(parsed.pictures) == 1 and not parsed.ocr_requests
    text = parsed.passages[0].text
    assert "Modality: US" in text and "Body part: ABDOMEN" in text and "Liver survey" in text
    assert _found(text + parsed.pictures[0].caption) == []
    assert parsed.notice.startswith("De-identified: ") and "not kept" in parsed.notice
    assert _found(parsed.notice) == []


def test_the_installation_key_is_made_once_private_and_agreed(tmp_path):
    keys = []
    threads = [threading.Thread(target=lambda: keys.append(dicom.installation_key(tmp_path))) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(set(keys)) == 1 and len(keys[0]) == 32
    assert (tmp_path / "deid.key").stat().st_mode & 0o777 == 0o600
    assert sorted(os.listdir(tmp_path)) == ["deid.key"]
    assert dicom.installation_key(tmp_path) == keys[0]


def test_descriptions_lose_dates_joined_names_and_every_id(tmp_path):
    path = dicoms.ct(tmp_path / "ct.dcm")
    ds = pydicom.dcmread(path)
    ds.PatientName = "Zhang^San=张^三"
    ds.OtherPatientIDs = ["A1234567", "B7654321"]
    ds.PatientBirthDate = "19610302"
    ds.StudyDescription = "CT 张三 复查 B7654321 ZHANG SAN 2024-09-17 / 17.09.2024 born 1961.03.02"
    report = dicom.deidentify(ds, KEY)
    kept = str(ds.StudyDescription)
    for secret in ("张三", "B7654321", "ZHANG", "2024", "17.09", "1961"):
        assert secret not in kept, kept
    assert kept.startswith("CT ") and "复查" in kept and "StudyDescription" in report.cleaned


def test_a_header_that_says_text_is_burned_in_is_refused_when_none_is_found(files):
    with pytest.raises(UnreadableFileError, match="burned into the image"):
        dicom.read(files["us"], KEY, find_text=lambda image: [])
    assert dicom.read(files["ct"], KEY, find_text=lambda image: []).report.text_regions == 0  # no claim: kept


def test_palette_colour_is_shown_in_its_colours(tmp_path):
    path = dicoms.mr(tmp_path / "palette.dcm")
    ds = pydicom.dcmread(path)
    ds.PhotometricInterpretation = "PALETTE COLOR"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit = 8, 8, 7
    ds.PixelData = (np.arange(192 * 160) % 256).astype(np.uint8).tobytes()
    for colour, level in (("Red", 65535), ("Green", 0), ("Blue", 0)):
        setattr(ds, f"{colour}PaletteColorLookupTableDescriptor", [256, 0, 16])
        ds[f"{colour}PaletteColorLookupTableDescriptor"].VR = "US"
        setattr(ds, f"{colour}PaletteColorLookupTableData", np.full(256, level, dtype=np.uint16).tobytes())
    ds.save_as(path)
    pixels = np.asarray(dicom.read(path, KEY, find_text=lambda image: []).image)
    assert pixels[..., 0].min() == 255 and pixels[..., 1].max() == 0  # red everywhere, as its table says


def test_files_without_a_patient_share_no_pseudonym_or_date_shift(tmp_path):
    dates = set()
    for n in range(2):
        ds = pydicom.dcmread(dicoms.ct(tmp_path / f"{n}.dcm"))
        del ds.PatientID
        del ds.PatientName
        dicom.deidentify(ds, KEY)
        dates.add(ds.StudyDate)
    assert len(dates) == 2
