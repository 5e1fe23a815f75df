"""Small, real files of each accepted (and some refused) format, built in memory for the tests."""

from __future__ import annotations

import gzip
import io
import struct
import zipfile
import zlib


def png(width: int = 4, height: int = 3) -> bytes:
    """A valid RGB PNG (signature, IHDR, zlib IDAT, IEND, all CRCs right)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(kind + data) & 0xFFFFFFFF
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    scanlines = b"".join(
        b"\x00" + b"".join(bytes([(x * 50) % 256, (y * 70) % 256, 200]) for x in range(width)) for y in range(height)
    )
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(scanlines)) + chunk(b"IEND", b"")
    )


def jpeg() -> bytes:
    """SOI + a JFIF APP0 segment + EOI: enough for any signature check."""
    app0 = b"JFIF\x00" + bytes([1, 1, 0, 0, 1, 0, 1, 0, 0])
    return b"\xff\xd8" + b"\xff\xe0" + struct.pack(">H", len(app0) + 2) + app0 + b"\xff\xd9"


def _box(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", 8 + len(payload)) + kind + payload


def mp4(payload: bytes = b"\x00" * 64) -> bytes:
    return _box(b"ftyp", b"isom" + struct.pack(">I", 0x200) + b"isomiso2avc1mp41") + _box(b"mdat", payload)


def quicktime() -> bytes:
    return _box(b"ftyp", b"qt  " + struct.pack(">I", 0x200) + b"qt  ") + _box(b"mdat", b"\x00" * 16)


def m4a() -> bytes:
    return _box(b"ftyp", b"M4A " + struct.pack(">I", 0) + b"M4A mp42isom") + _box(b"mdat", b"\x00" * 16)


def heic() -> bytes:
    return _box(b"ftyp", b"heic" + struct.pack(">I", 0) + b"mif1heic") + _box(b"meta", b"\x00" * 16)


def avif() -> bytes:
    return _box(b"ftyp", b"avif" + struct.pack(">I", 0) + b"avifmif1miaf") + _box(b"meta", b"\x00" * 16)


def pdf() -> bytes:
    return (
        b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<< /Type /Catalog /Pages 2 0 R >>\nendobj\n"
        b"2 0 obj\n<< /Type /Pages /Kids [] /Count 0 >>\nendobj\ntrailer\n<< /Root 1 0 R >>\n%%EOF\n"
    )


def text(repeat: int = 20) -> bytes:
    return ("Minister said \u201cunemployment fell 3\u00a0%\u201d \u2014 source: r\u00e9sum\u00e9.\n" * repeat).encode()


def html() -> bytes:
    return b"<!DOCTYPE html>\n<html><head><title>x</title></head><body><script>alert(1)</script></body></html>\n"


def gif() -> bytes:
    """A 1x1 GIF89a."""
    return (
        b"GIF89a\x01\x00\x01\x00\x80\x00\x00\x00\x00\x00\xff\xff\xff"
        b"!\xf9\x04\x01\x00\x00\x00\x00,\x00\x00\x00\x00\x01\x00\x01\x00\x00\x02\x02D\x01\x00;"
    )


def webp() -> bytes:
    body = b"WEBPVP8 " + struct.pack("<I", 10) + b"\x00" * 10
    return b"RIFF" + struct.pack("<I", len(body)) + body


def wav() -> bytes:
    fmt = struct.pack("<HHIIHH", 1, 1, 8000, 16000, 2, 16)
    body = b"WAVE" + b"fmt " + struct.pack("<I", len(fmt)) + fmt + b"data" + struct.pack("<I", 4) + b"\x00" * 4
    return b"RIFF" + struct.pack("<I", len(body)) + body


def tiff() -> bytes:
    return b"II*\x00\x08\x00\x00\x00" + b"\x00" * 16


def webm() -> bytes:
    # EBML header element with DocType "webm".
    doc = b"\x42\x86\x81\x01" + b"\x42\x82\x84webm" + b"\x42\x87\x81\x04" + b"\x42\x85\x81\x02"
    return b"\x1a\x45\xdf\xa3" + bytes([0x80 | len(doc)]) + doc + b"\x18\x53\x80\x67" + b"\x01" + b"\x00" * 7


def matroska() -> bytes:
    doc = b"\x42\x82\x88matroska"
    return b"\x1a\x45\xdf\xa3" + bytes([0x80 | len(doc)]) + doc


def _ogg_page(packet: bytes) -> bytes:
    return b"OggS\x00\x02" + b"\x00" * 8 + b"\x01\x00\x00\x00" + b"\x00" * 8 + b"\x01" + bytes([len(packet)]) + packet


def ogg_vorbis() -> bytes:
    return _ogg_page(b"\x01vorbis" + b"\x00" * 22)


def ogg_theora() -> bytes:
    return _ogg_page(b"\x80theora" + b"\x03\x02\x01" + b"\x00" * 30)


def mp3_id3() -> bytes:
    return b"ID3\x04\x00\x00\x00\x00\x00\x00" + b"\xff\xfb\x90\x64" + b"\x00" * 100


def mp3_bare() -> bytes:
    return b"\xff\xfb\x90\x64" + b"\x00" * 413


def aac_adts() -> bytes:
    return b"\xff\xf1\x50\x80\x02\x1f\xfc" + b"\x00" * 9


def flac() -> bytes:
    return b"fLaC\x00\x00\x00\x22" + b"\x00" * 34


def warc() -> bytes:
    record = b"software: test\r\n"
    return (
        b"WARC/1.1\r\nWARC-Type: warcinfo\r\n"
        b"WARC-Record-ID: <urn:uuid:00000000-0000-0000-0000-000000000000>\r\n"
        b"Content-Length: " + str(len(record)).encode() + b"\r\n\r\n" + record + b"\r\n\r\n"
    )


def warc_gz() -> bytes:
    return gzip.compress(warc())


def wacz() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as archive:
        archive.writestr("archive/data.warc.gz", warc_gz())
        archive.writestr("pages/pages.jsonl", '{"format": "json-pages-1.0"}\n')
        archive.writestr("datapackage.json", '{"profile": "data-package", "wacz_version": "1.1.1"}')
    return buffer.getvalue()


def plain_zip() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("readme.txt", "hello")
    return buffer.getvalue()


def elf() -> bytes:
    return b"\x7fELF\x02\x01\x01\x00" + b"\x00" * 8 + b"\x02\x00\x3e\x00" + b"\x00" * 100


def windows_exe() -> bytes:
    return b"MZ\x90\x00\x03\x00\x00\x00\x04\x00\x00\x00\xff\xff\x00\x00" + b"\x00" * 100


def svg() -> bytes:
    return b'<svg xmlns="http://www.w3.org/2000/svg" onload="alert(1)"><circle r="4"/></svg>'


def invalid_utf8_text() -> bytes:
    return b"plain start, then latin-1: caf\xe9 and more\n"
