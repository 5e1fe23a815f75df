"""Decide an upload's media type from its first bytes; the client's Content-Type is never consulted.

Why a hand-written signature table rather than puremagic (or libmagic):

* The answer is an allow-list decision, not a best guess. A table of the ~20 formats a desk accepts
  is short enough to read in one sitting, and each rule can be as strict as we like (an ISO-BMFF
  brand check, an Ogg codec check, "valid UTF-8 with no NUL" for text).
* A general database returns ranked guesses with confidence scores and its own naming of media
  types, which would need a mapping layer and would shift under us between releases.
* No extra runtime dependency.

Anything not matched is refused with ``UnsupportedMediaType`` (415). A second, smaller table names
common refused formats (executables, plain archives, SVG...) so the error says what was seen.

The caller passes the first ``SNIFF_BYTES`` bytes (fewer if the file is shorter). ``TextChecker``
lets the caller keep validating ``text/plain`` bodies past the sniffed head.
"""

from __future__ import annotations

import codecs
import re
import struct
import zlib

from app.errors import UnsupportedMediaType

SNIFF_BYTES = 8 * 1024

ALLOWED_MEDIA_TYPES: frozenset[str] = frozenset(
    {
        "image/png",
        "image/jpeg",
        "image/gif",
        "image/webp",
        "image/tiff",
        "image/heic",
        "image/heif",
        "image/avif",
        "video/mp4",
        "video/quicktime",
        "video/webm",
        "video/ogg",
        "audio/mpeg",
        "audio/wav",
        "audio/ogg",
        "audio/mp4",
        "audio/aac",
        "audio/flac",
        "application/pdf",
        "text/plain",
        "text/html",
        "application/warc",
        "application/gzip",  # only ever returned for gzip-compressed WARC (.warc.gz)
        "application/wacz",
    }
)

# ISO base media file format (MP4 family) brands, from the ftyp box.
_HEIC_BRANDS = {b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx"}
_HEIF_BRANDS = {b"mif1", b"msf1"}
_AVIF_BRANDS = {b"avif", b"avis"}
_M4A_BRANDS = {b"M4A ", b"M4B ", b"M4P "}
_MP4_BRANDS = {
    b"isom", b"iso2", b"iso3", b"iso4", b"iso5", b"iso6", b"iso7", b"iso8", b"iso9",
    b"mp41", b"mp42", b"mp71", b"avc1", b"M4V ", b"M4VH", b"M4VP", b"dash", b"MSNV", b"f4v ",
}  # fmt: skip

# Top-level names a WACZ package is made of (WACZ 1.1). The first zip entry must be one of them.
_WACZ_ENTRY_PREFIXES = (
    "archive/", "indexes/", "pages/", "logs/", "datapackage.json", "datapackage-digest.json",
)  # fmt: skip

_HTML_OPENERS = re.compile(
    rb"<(?:!doctype\s+html|html|head|body|script|iframe|h1|div|font|table|a|style|title|b|br|p|meta|!--)"
    rb"(?:[\s>]|$)",
    re.IGNORECASE,
)


def _refused(detected: str, why: str | None = None) -> UnsupportedMediaType:
    detail = f"{detected} is not an accepted evidence type"
    if why:
        detail += f" ({why})"
    return UnsupportedMediaType(detail, detected=detected, accepted=sorted(ALLOWED_MEDIA_TYPES))


def _iso_bmff(head: bytes) -> str | None:
    if len(head) < 12 or head[4:8] != b"ftyp":
        return None
    box_size = struct.unpack(">I", head[:4])[0]
    box_end = min(len(head), box_size if box_size >= 16 else 16)
    major = head[8:12]
    compatible = [head[i : i + 4] for i in range(16, box_end - 3, 4)]
    for brand in [major, *compatible]:
        if brand in _AVIF_BRANDS:
            return "image/avif"
        if brand in _HEIC_BRANDS:
            return "image/heic"
        if brand in _HEIF_BRANDS:
            return "image/heif"
        if brand == b"qt  ":
            return "video/quicktime"
        if brand in _M4A_BRANDS:
            return "audio/mp4"
        if brand in _MP4_BRANDS:
            return "video/mp4"
    raise _refused(f"ISO media file (brand {major.decode('latin-1').strip()!r})")


def _ebml(head: bytes) -> str:
    # The EBML header carries a DocType string near the start.
    if b"webm" in head[:64]:
        return "video/webm"
    if b"matroska" in head[:64]:
        raise _refused("video/x-matroska")
    raise _refused("EBML container")


def _ogg(head: bytes) -> str:
    if b"\x80theora" in head or b"\x80daala" in head or b"BBCD\x00" in head:
        return "video/ogg"
    if b"\x01vorbis" in head or b"OpusHead" in head or b"\x7fFLAC" in head or b"Speex   " in head:
        return "audio/ogg"
    raise _refused("application/ogg", "unknown codec")


def _mpeg_audio_frame(head: bytes) -> str | None:
    """A bare MPEG audio frame header (MP3 without ID3 tag) or an ADTS (AAC) header."""
    if len(head) < 4 or head[0] != 0xFF or head[1] & 0xE0 != 0xE0:
        return None
    version = (head[1] >> 3) & 0b11
    layer = (head[1] >> 1) & 0b11
    if layer == 0:
        # ADTS: version bit pattern differs; sampling index 13-15 are reserved.
        if head[1] & 0xF6 == 0xF0 and (head[2] >> 2) & 0x0F < 13:
            return "audio/aac"
        return None
    bitrate = head[2] >> 4
    sampling = (head[2] >> 2) & 0b11
    if version == 0b01 or bitrate in (0, 0b1111) or sampling == 0b11:
        return None
    return "audio/mpeg"


def _zip(head: bytes, filename: str | None) -> str:
    if not (filename and filename.lower().endswith(".wacz")):
        raise _refused("application/zip", "a zip is accepted only as a WACZ file named *.wacz")
    if head[:4] == b"PK\x03\x04" and len(head) >= 30:
        name_len = struct.unpack("<H", head[26:28])[0]
        first = head[30 : 30 + name_len].decode("utf-8", "replace")
        if first.startswith(_WACZ_ENTRY_PREFIXES):
            return "application/wacz"
        raise _refused("application/zip", f"first entry {first!r} does not look like a WACZ package")
    raise _refused("application/zip", "empty or unusual zip, not a WACZ package")


def _gzip(head: bytes) -> str:
    try:
        inner = zlib.decompressobj(16 + zlib.MAX_WBITS).decompress(head, 64)
    except zlib.error:
        inner = b""
    if inner.startswith(b"WARC/1."):
        return "application/gzip"
    raise _refused("application/gzip", "gzip is accepted only for compressed WARC files")


def _valid_text(head: bytes, complete: bool) -> bool:
    if b"\x00" in head:
        return False
    try:
        codecs.getincrementaldecoder("utf-8")().decode(head, final=complete)
    except UnicodeDecodeError:
        return False
    return True


# Formats we refuse, so the 415 can say what it saw. Strong magic numbers are trusted outright; the
# weak two-byte ones only name data that also fails the text check (a note may well begin "MZ").
_STRONG_REFUSED: list[tuple[bytes, str]] = [
    (b"\x7fELF", "application/x-executable (ELF)"),
    (b"\xfe\xed\xfa\xce", "application/x-mach-binary"),
    (b"\xfe\xed\xfa\xcf", "application/x-mach-binary"),
    (b"\xce\xfa\xed\xfe", "application/x-mach-binary"),
    (b"\xcf\xfa\xed\xfe", "application/x-mach-binary"),
    (b"\xca\xfe\xba\xbe", "application/java-vm or Mach-O universal binary"),
    (b"\x00asm", "application/wasm"),
    (b"7z\xbc\xaf\x27\x1c", "application/x-7z-compressed"),
    (b"Rar!\x1a\x07", "application/vnd.rar"),
    (b"\xfd7zXZ\x00", "application/x-xz"),
    (b"\x28\xb5\x2f\xfd", "application/zstd"),
    (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1", "application/x-ole-storage (legacy Office document)"),
    (b"8BPS", "image/vnd.adobe.photoshop"),
    (b"SQLite format 3\x00", "application/vnd.sqlite3"),
    (b"\x00\x00\x01\x00", "image/vnd.microsoft.icon"),
]
_WEAK_REFUSED: list[tuple[bytes, str]] = [
    (b"MZ", "application/x-msdownload (Windows executable)"),
    (b"BM", "image/bmp"),
    (b"BZh", "application/x-bzip2"),
]


def _lookup(table: list[tuple[bytes, str]], head: bytes) -> str | None:
    for magic, label in table:
        if head.startswith(magic):
            return label
    return None


def sniff_media_type(head: bytes, filename: str | None = None, *, complete: bool = False) -> str:
    """Media type of a file whose first bytes are ``head``.

    ``filename`` is consulted only to tell a WACZ package from any other zip. ``complete`` says
    ``head`` is the whole file, so a UTF-8 sequence cut at the end counts as invalid.
    Raises ``UnsupportedMediaType`` (with ``detected`` naming what was seen) for anything else.
    """
    if not head:
        raise _refused("empty content")

    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if head.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if head[:6] in (b"GIF87a", b"GIF89a"):
        return "image/gif"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "image/webp"
    if head[:4] == b"RIFF" and head[8:12] == b"WAVE":
        return "audio/wav"
    if head[:4] in (b"II*\x00", b"MM\x00*"):
        return "image/tiff"
    bmff = _iso_bmff(head)
    if bmff:
        return bmff
    if head.startswith(b"\x1a\x45\xdf\xa3"):
        return _ebml(head)
    if head.startswith(b"OggS"):
        return _ogg(head)
    if head.startswith(b"fLaC"):
        return "audio/flac"
    if head.startswith(b"ID3"):
        return "audio/mpeg"
    frame = _mpeg_audio_frame(head)
    if frame:
        return frame
    if head.startswith(b"%PDF-"):
        return "application/pdf"
    if head.startswith(b"WARC/1."):
        return "application/warc"
    if head[:4] in (b"PK\x03\x04", b"PK\x05\x06"):
        return _zip(head, filename)
    if head.startswith(b"\x1f\x8b"):
        return _gzip(head)

    refused = _lookup(_STRONG_REFUSED, head)
    if refused:
        raise _refused(refused)
    if head[:4] == b"RIFF" and len(head) >= 12:
        raise _refused(f"RIFF container ({head[8:12].decode('latin-1').strip()!r})")

    # Textual formats. Look past a UTF-8 byte order mark and leading blank space.
    text_head = head.removeprefix(b"\xef\xbb\xbf").lstrip(b" \t\r\n\x0c")
    lowered = text_head[:512].lower()
    if lowered.startswith((b"<?xml", b"<svg")) or b"<svg" in lowered:
        raise _refused("image/svg+xml or XML", "scriptable XML is not accepted")
    if b"\x00" not in head and _HTML_OPENERS.match(text_head):
        # Saved pages are not always UTF-8, so only NUL-free is required here.
        return "text/html"
    if _valid_text(head, complete):
        return "text/plain"
    raise _refused(_lookup(_WEAK_REFUSED, head) or "application/octet-stream", "binary data, or text that is not UTF-8")


class TextChecker:
    """Keeps checking a ``text/plain`` body chunk by chunk: valid UTF-8, no NUL bytes."""

    def __init__(self) -> None:
        self._decoder = codecs.getincrementaldecoder("utf-8")()

    def feed(self, chunk: bytes) -> None:
        if b"\x00" in chunk:
            raise _refused("application/octet-stream", "NUL byte in text")
        try:
            self._decoder.decode(chunk, final=False)
        except UnicodeDecodeError:
            raise _refused("application/octet-stream", "text is not valid UTF-8") from None

    def finish(self) -> None:
        try:
            self._decoder.decode(b"", final=True)
        except UnicodeDecodeError:
            raise _refused("application/octet-stream", "text ends inside a UTF-8 sequence") from None
