"""What the gateway takes as a picture or file: decided from the bytes, never from the name."""

from __future__ import annotations

import pytest

from bot.config import FILE_CONTENT_TYPES, FileSettings, Settings
from bot.core.files import FILE_TYPES, IMAGE_TYPES, FileRefused, identify, safe_name

ALL = frozenset(FILE_CONTENT_TYPES)
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64
SAMPLES = {
    "image/png": PNG,
    "image/jpeg": b"\xff\xd8\xff\xe0" + b"\x00" * 64,
    "image/gif": b"GIF89a" + b"\x00" * 64,
    "image/webp": b"RIFF\x24\x00\x00\x00WEBPVP8 " + b"\x00" * 64,
    "application/pdf": b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj\n",
    "text/plain": "Serial SN100234, bought in März.\n".encode(),
}


def test_config_and_sniffer_know_the_same_types() -> None:
    assert set(FILE_CONTENT_TYPES) == set(IMAGE_TYPES) | set(FILE_TYPES)


@pytest.mark.parametrize("content_type", sorted(SAMPLES))
def test_each_accepted_type_is_recognised_from_its_bytes(content_type: str) -> None:
    kind = identify(SAMPLES[content_type], ALL, 10_000)
    assert kind.content_type == content_type
    assert kind.kind == ("image" if content_type.startswith("image/") else "file")


@pytest.mark.parametrize(
    "data",
    [
        b'<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>',
        b'<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg"/>',
        b"\xef\xbb\xbf  <!DOCTYPE html><html><body>hi</body></html>",
        b"<img src=x onerror=alert(1)>",
        b"Looks like text but <script>alert(1)</script>",
    ],
)
def test_markup_is_refused_whatever_it_is_called(data: bytes) -> None:
    with pytest.raises(FileRefused) as refused:
        identify(data, ALL, 10_000)
    assert refused.value.status == 415 and refused.value.code == "unsupported_type"
    assert "web page or script" in str(refused.value)


def test_unknown_binary_empty_and_oversized_files_are_refused_with_the_reason() -> None:
    with pytest.raises(FileRefused) as refused:
        identify(b"MZ\x90\x00\x03\x00\x00\x00" * 8, ALL, 10_000)  # a Windows program
    assert refused.value.status == 415
    assert "Accepted: GIF, JPEG, PDF, PNG, WebP, plain text." in str(refused.value)
    with pytest.raises(FileRefused) as refused:
        identify(b"", ALL, 10_000)
    assert refused.value.code == "empty"
    with pytest.raises(FileRefused) as refused:
        identify(PNG + b"\x00" * 3 * 1024 * 1024, ALL, 2 * 1024 * 1024)
    assert refused.value.status == 413
    assert "limit for a file is 2.0 MB and this one is 3.0 MB" in str(refused.value)


def test_a_type_switched_off_in_settings_is_refused() -> None:
    with pytest.raises(FileRefused) as refused:
        identify(SAMPLES["application/pdf"], frozenset({"image/png"}), 10_000)
    assert "Accepted: PNG." in str(refused.value)


def test_names_lose_paths_and_odd_characters_and_get_the_real_extension() -> None:
    png = identify(PNG, ALL, 10_000)
    assert safe_name("../../etc/passwd", png) == "passwd.png"
    assert safe_name('C:\\Users\\me\\broken "screen".svg', png) == "broken _screen_.png"
    assert safe_name("\u202eevil\u0000.png", png) == "evil.png"
    assert safe_name(None, png) == "photo.png"
    assert safe_name("x" * 300 + ".png", png) == "x" * 90 + ".png"
    pdf = identify(SAMPLES["application/pdf"], ALL, 10_000)
    assert safe_name("", pdf) == "file.pdf"


def test_settings_refuse_unknown_types() -> None:
    with pytest.raises(ValueError, match="image/svg"):
        FileSettings(types=["image/png", "image/svg+xml"])
    assert Settings.model_validate({"secret_key": "k" * 16}).files.max_bytes == 10 * 1024 * 1024
