"""Media type detection from bytes, filename sanitising and the pure download helpers."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from app.errors import RangeNotSatisfiable, UnsupportedMediaType
from app.evidence.download import ByteRange, content_disposition, etag_matches, parse_range
from app.evidence.sniff import ALLOWED_MEDIA_TYPES, SNIFF_BYTES, TextChecker, sniff_media_type
from app.evidence.upload import safe_filename

from . import samples

ACCEPTED: list[tuple[Callable[[], bytes], str]] = [
    (samples.png, "image/png"),
    (samples.jpeg, "image/jpeg"),
    (samples.gif, "image/gif"),
    (samples.webp, "image/webp"),
    (samples.tiff, "image/tiff"),
    (samples.heic, "image/heic"),
    (samples.avif, "image/avif"),
    (samples.mp4, "video/mp4"),
    (samples.quicktime, "video/quicktime"),
    (samples.webm, "video/webm"),
    (samples.ogg_theora, "video/ogg"),
    (samples.ogg_vorbis, "audio/ogg"),
    (samples.mp3_id3, "audio/mpeg"),
    (samples.mp3_bare, "audio/mpeg"),
    (samples.aac_adts, "audio/aac"),
    (samples.m4a, "audio/mp4"),
    (samples.wav, "audio/wav"),
    (samples.flac, "audio/flac"),
    (samples.pdf, "application/pdf"),
    (samples.text, "text/plain"),
    (samples.html, "text/html"),
    (samples.warc, "application/warc"),
    (samples.warc_gz, "application/gzip"),
]


@pytest.mark.parametrize(("make", "expected"), ACCEPTED, ids=[m.__name__ for m, _ in ACCEPTED])
def test_accepted_formats(make: Callable[[], bytes], expected: str) -> None:
    data = make()
    assert sniff_media_type(data[:SNIFF_BYTES], "whatever.bin", complete=True) == expected
    assert expected in ALLOWED_MEDIA_TYPES


def test_wacz_needs_its_filename() -> None:
    data = samples.wacz()
    assert sniff_media_type(data[:SNIFF_BYTES], "crawl.WACZ") == "application/wacz"
    with pytest.raises(UnsupportedMediaType) as caught:
        sniff_media_type(data[:SNIFF_BYTES], "crawl.zip")
    assert caught.value.extra["detected"] == "application/zip"
    with pytest.raises(UnsupportedMediaType, match="WACZ"):
        sniff_media_type(samples.plain_zip(), "sneaky.wacz")


REFUSED: list[tuple[bytes, str]] = [
    (samples.elf(), "ELF"),
    (samples.windows_exe(), "Windows executable"),
    (samples.plain_zip(), "application/zip"),
    (samples.svg(), "svg"),
    (b'<?xml version="1.0"?><svg/>', "XML"),
    (samples.matroska(), "matroska"),
    (samples.invalid_utf8_text(), "application/octet-stream"),
    (b"hello\x00world", "application/octet-stream"),
    (b"\x1f\x8b\x08\x00" + b"\x00" * 20, "application/gzip"),
    (b"RIFF\x00\x00\x00\x00AVI LIST", "AVI"),
    (b"\x00\x00\x00\x14ftypcrx \x00\x00\x00\x01crx ", "ISO media"),
    (b"", "empty"),
]


@pytest.mark.parametrize(("data", "named"), REFUSED)
def test_refused_formats_are_named(data: bytes, named: str) -> None:
    with pytest.raises(UnsupportedMediaType) as caught:
        sniff_media_type(data, "file.bin", complete=True)
    assert caught.value.status == 415
    assert named.lower() in caught.value.extra["detected"].lower()
    assert named.lower() in caught.value.detail.lower()


def test_text_head_may_end_mid_character() -> None:
    data = ("é" * SNIFF_BYTES).encode()
    head = data[: SNIFF_BYTES - 1]  # cuts a two-byte character in half
    assert sniff_media_type(head, complete=False) == "text/plain"
    with pytest.raises(UnsupportedMediaType):
        sniff_media_type(head, complete=True)


def test_text_checker_follows_the_whole_body() -> None:
    checker = TextChecker()
    checker.feed("naïve ".encode()[:3])
    checker.feed("naïve ".encode()[3:])
    checker.finish()
    with pytest.raises(UnsupportedMediaType, match="NUL"):
        TextChecker().feed(b"ok\x00")
    bad = TextChecker()
    with pytest.raises(UnsupportedMediaType, match="UTF-8"):
        bad.feed(b"\xff\xfe")
    truncated = TextChecker()
    truncated.feed("é".encode()[:1])
    with pytest.raises(UnsupportedMediaType):
        truncated.finish()


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("photo.png", "photo.png"),
        ("../../etc/passwd", "passwd"),
        ("C:\\x\\evil.png", "evil.png"),
        ("C:evil.png", "evil.png"),
        ("\\\\server\\share\\doc.pdf", "doc.pdf"),
        ("..", "upload"),
        ("../", "upload"),
        ("", "upload"),
        (None, "upload"),
        ("a..b.txt", "a.b.txt"),
        ("report\r\nX-Evil: 1.pdf", "report X-Evil: 1.pdf"),
        ("nul\x00and\x1bescape.txt", "nulandescape.txt"),
        ("invoice\u202egnp.exe", "invoicegnp.exe"),
        ("  .hidden . ", "hidden"),
        ("tab\there.txt", "tab here.txt"),
        ("Café\u0301 résumé.pdf", "Café\u0301 résumé.pdf".replace("e\u0301", "é")),
        ("x" * 300 + ".jpeg", "x" * 250 + ".jpeg"),
        ("y" * 300, "y" * 255),
    ],
)
def test_safe_filename(raw: str | None, expected: str) -> None:
    assert safe_filename(raw) == expected


def test_content_disposition() -> None:
    assert content_disposition("photo.png") == "attachment; filename=\"photo.png\"; filename*=UTF-8''photo.png"
    value = content_disposition('Bérénice "quote"; x.pdf')
    assert value.startswith('attachment; filename="Berenice _quote__ x.pdf"; ')
    assert value.endswith("filename*=UTF-8''B%C3%A9r%C3%A9nice%20%22quote%22%3B%20x.pdf")
    assert content_disposition("报告.pdf", "inline") == (
        "inline; filename=\"download.pdf\"; filename*=UTF-8''%E6%8A%A5%E5%91%8A.pdf"
    )
    assert content_disposition("../../x\r\n.txt").count("\r") == 0
    assert 'filename="x .txt"' in content_disposition("../../x\r\n.txt")


SIZE = 1000


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (None, ByteRange(200, 0, 999)),
        ("bytes=0-0", ByteRange(206, 0, 0)),
        ("bytes=0-499", ByteRange(206, 0, 499)),
        ("bytes=500-", ByteRange(206, 500, 999)),
        ("bytes=-1", ByteRange(206, 999, 999)),
        ("bytes=-200", ByteRange(206, 800, 999)),
        ("bytes=-5000", ByteRange(206, 0, 999)),
        ("bytes=990-5000", ByteRange(206, 990, 999)),
        ("bytes=999-999", ByteRange(206, 999, 999)),
        ("BYTES=1-2", ByteRange(206, 1, 2)),
        ("bytes= 1-2 ", ByteRange(206, 1, 2)),
        ("bytes=1-2,", ByteRange(206, 1, 2)),
        # ignored -> whole body
        ("bytes=0-1,5-6", ByteRange(200, 0, 999)),  # several ranges: whole body by policy
        ("bytes=5-4", ByteRange(200, 0, 999)),  # last < first: invalid
        ("bytes=-", ByteRange(200, 0, 999)),
        ("bytes=a-b", ByteRange(200, 0, 999)),
        ("bytes=1-2-3", ByteRange(200, 0, 999)),
        ("bytes=", ByteRange(200, 0, 999)),
        ("items=0-5", ByteRange(200, 0, 999)),
        ("0-5", ByteRange(200, 0, 999)),
        ("bytes=" + "9" * 40 + "-", ByteRange(200, 0, 999)),
    ],
)
def test_parse_range(header: str | None, expected: ByteRange) -> None:
    assert parse_range(header, SIZE) == expected


@pytest.mark.parametrize(
    ("header", "size"),
    [("bytes=1000-", 1000), ("bytes=5000-6000", 1000), ("bytes=-0", 1000), ("bytes=0-0", 0), ("bytes=-3", 0)],
)
def test_parse_range_unsatisfiable(header: str, size: int) -> None:
    with pytest.raises(RangeNotSatisfiable) as caught:
        parse_range(header, size)
    assert caught.value.status == 416
    assert caught.value.headers == {"Content-Range": f"bytes */{size}"}


def test_if_range() -> None:
    etag = '"' + "a" * 64 + '"'
    assert parse_range("bytes=0-1", SIZE, if_range=etag, etag=etag).status == 206
    assert parse_range("bytes=0-1", SIZE, if_range='"other"', etag=etag).status == 200
    assert parse_range("bytes=0-1", SIZE, if_range="W/" + etag, etag=etag).status == 200
    assert parse_range("bytes=0-1", SIZE, if_range="Wed, 21 Oct 2015 07:28:00 GMT", etag=etag).status == 200


def test_etag_matches() -> None:
    etag = '"abc"'
    assert etag_matches('"abc"', etag)
    assert etag_matches('"x", W/"abc"', etag)
    assert etag_matches("*", etag)
    assert not etag_matches('"abcd"', etag)
    assert not etag_matches(None, etag)
