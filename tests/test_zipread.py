"""The fast zip member table and reader agree with zipfile, zip64 and odd archives included."""
from __future__ import annotations

import zipfile

import pytest

from rnngan.data import zipread


def expected(path) -> list[zipread.Member]:
    with zipfile.ZipFile(path) as zf:
        return [zipread.Member.of(info) for info in zf.infolist()]


def write(path, entries: dict[str, bytes], compression=zipfile.ZIP_DEFLATED) -> None:
    with zipfile.ZipFile(path, "w", compression) as zf:
        zf.mkdir("img") if hasattr(zf, "mkdir") else None
        for name, data in entries.items():
            zf.writestr(name, data)


ENTRIES = {f"img/{i:06d}.jpg": bytes([i % 251]) * (100 + 37 * i) for i in range(40)}
ENTRIES["img/caf\u00e9 \u00fcber.png"] = b"unicode name"


@pytest.mark.parametrize("compression", [zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED])
def test_members_match_zipfile_and_read_back_the_same_bytes(tmp_path, compression):
    path = tmp_path / "a.zip"
    write(path, ENTRIES, compression)
    members = zipread.members(path)
    assert zipread._parse(path) == members == expected(path)
    reader = zipread.MemberReader(path)
    try:
        for m in members:
            if not m.is_dir:
                assert reader.read(m) == ENTRIES[m.name]
    finally:
        reader.close()


def test_zip64_end_record_and_extra_fields_are_parsed(tmp_path, monkeypatch):
    # Tiny limits make zipfile write what a >4 GiB, >65,535-member archive holds: the zip64
    # end of central directory and zip64 sizes and offsets in each entry's extra field.
    monkeypatch.setattr(zipfile, "ZIP64_LIMIT", 500)
    monkeypatch.setattr(zipfile, "ZIP_FILECOUNT_LIMIT", 5)
    path = tmp_path / "big.zip"
    write(path, ENTRIES, zipfile.ZIP_STORED)
    monkeypatch.undo()
    members = zipread.members(path)
    assert zipread._parse(path) == members          # parsed here, not by the zipfile fallback
    assert members == expected(path) and len(members) >= len(ENTRIES)
    assert any(m.offset > 500 for m in members)
    reader = zipread.MemberReader(path)
    try:
        assert all(reader.read(m) == ENTRIES[m.name] for m in members if not m.is_dir)
    finally:
        reader.close()


def test_an_archive_with_bytes_before_it_falls_back_to_zipfile(tmp_path):
    plain = tmp_path / "plain.zip"
    write(plain, ENTRIES)
    prefixed = tmp_path / "prefixed.zip"
    prefixed.write_bytes(b"#!/bin/sh\nexit 0\n" * 10 + plain.read_bytes())
    assert zipread._parse(prefixed) is None
    assert zipread.members(prefixed) == expected(prefixed)


def test_not_a_zip_is_bad_zip_file(tmp_path):
    path = tmp_path / "x.zip"
    path.write_bytes(b"definitely not a zip" * 50)
    with pytest.raises(zipfile.BadZipFile):
        zipread.members(path)


def test_a_flipped_byte_is_a_crc_error_naming_the_member(tmp_path):
    path = tmp_path / "a.zip"
    write(path, {"img/a.jpg": b"x" * 1000}, zipfile.ZIP_STORED)
    member = zipread.members(path)[-1]
    data = bytearray(path.read_bytes())
    data[member.offset + 30 + len(member.name) + 500] ^= 0xFF
    path.write_bytes(bytes(data))
    reader = zipread.MemberReader(path)
    try:
        with pytest.raises(zipfile.BadZipFile, match="Bad CRC-32 for file 'img/a.jpg'"):
            reader.read(member)
    finally:
        reader.close()
