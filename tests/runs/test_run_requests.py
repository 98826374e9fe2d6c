"""The rules of a run request (400 invalid_run, 422, 501) and the zip download: pure functions."""

import base64
import io
import os
import zipfile

import pytest

from object_challenge.runs import languages
from object_challenge.runs.execute import LimitAboveMax, prepare, resolve_limits
from object_challenge.runs.files import InvalidRun, validate_files, write_files
from object_challenge.runs.zipper import build_zip


def one(name, content="x"):
    return [{"name": name, "content": content}]


@pytest.mark.parametrize(
    "name",
    [
        "",
        "/etc/passwd",
        "../x.py",
        "a/../../x.py",
        "a\\b.py",
        "a\x00b.py",
        "a\nb.py",
        "x" * 256,
        "a//b.py",
        "./a.py",
        "a/",
        5,
    ],
)
def test_bad_file_names_are_invalid_run(name):
    with pytest.raises(InvalidRun) as err:
        validate_files(one(name))
    assert err.value.field.startswith("files[0]")


def test_a_255_byte_name_is_fine_and_nested_paths_too():
    assert validate_files(one("x" * 255))[0][0] == "x" * 255
    assert validate_files(one("src/pkg/main.py"))[0][0] == "src/pkg/main.py"


@pytest.mark.parametrize(
    "files, field",
    [
        ([], "files"),
        ("main.py", "files"),
        (one("a.py") + one("a.py"), "files[1].name"),
        ([{"name": f"f{i}.py", "content": ""} for i in range(51)], "files"),
        (one("a.py", "x" * (512 * 1024 + 1)), "files"),
        ([{"name": "a.bin", "content": "not base64!", "encoding": "base64"}], "files[0].content"),
        ([{"name": "a.bin", "content": "", "encoding": "latin1"}], "files[0].encoding"),
        (one("a") + one("a/b.py"), "files"),
    ],
)
def test_bad_file_lists_are_invalid_run(files, field):
    with pytest.raises(InvalidRun) as err:
        validate_files(files)
    assert err.value.field == field


def test_base64_content_is_decoded():
    data = bytes(range(256))
    files = [{"name": "a.bin", "content": base64.b64encode(data).decode(), "encoding": "base64"}]
    assert validate_files(files) == [("a.bin", data)]


def test_writing_never_follows_a_link(tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    work = tmp_path / "work"
    work.mkdir()
    os.symlink(outside, work / "src")
    with pytest.raises(OSError):
        write_files(str(work), [("src/x.py", b"evil")])
    os.symlink(outside / "f", work / "f")
    with pytest.raises(OSError):
        write_files(str(work), [("f", b"evil")])
    assert list(outside.iterdir()) == []


def test_writing_creates_subdirectories(tmp_path):
    write_files(str(tmp_path), [("a/b/c.txt", b"hi"), ("a/d.txt", b"yo")])
    assert (tmp_path / "a/b/c.txt").read_bytes() == b"hi"


def test_args_must_be_a_list_of_strings():
    with pytest.raises(InvalidRun) as err:
        prepare({"language": "python", "files": one("main.py"), "args": "--x"})
    assert err.value.field == "args"


def test_limits_have_defaults_and_maxima():
    limits = resolve_limits(None)
    assert (limits.wall_s, limits.cpu_s, limits.memory_mb, limits.processes, limits.output_kb) == (10, 5, 256, 64, 64)
    with pytest.raises(LimitAboveMax) as err:
        resolve_limits({"memory_mb": 4096}, maxima={"memory_mb": 1024})
    assert (err.value.field, err.value.max) == ("limits.memory_mb", 1024)


def test_unknown_language_and_unavailable_prove():
    with pytest.raises(languages.UnknownLanguage):
        prepare({"language": "cobol", "files": one("main.cob")})
    if "prove" not in languages.get("ada").modes():
        with pytest.raises(languages.ModeUnavailable):
            prepare({"language": "ada", "mode": "prove", "files": one("main.adb")})


def test_languages_report_versions():
    described = {d["name"]: d for d in languages.describe()}
    assert {"python", "c", "ada"} <= set(described)
    assert described["python"]["version"].startswith("3.")
    assert described["c"]["modes"][:2] == ["run", "build"]


def test_language_from_the_seeds_extensions():
    assert languages.language_of(["main.adb", "p.ads"]) == "ada"
    assert languages.language_of(["x.h", "main.c"]) == "c"
    assert languages.language_of(["main.py"]) == "python"


def test_main_must_be_one_of_the_files():
    with pytest.raises(InvalidRun) as err:
        prepare({"language": "python", "files": one("a.py"), "main": "b.py"})
    assert err.value.field == "main"


def test_zip_has_the_base_project_and_the_users_files():
    filename, data = build_zip(one("main.adb", "procedure Main is begin null; end;"), base="ada", name="demo")
    assert filename == "demo.zip"
    names = zipfile.ZipFile(io.BytesIO(data)).namelist()
    assert sorted(names) == ["demo/README.md", "demo/main.adb", "demo/main.gpr"]


@pytest.mark.parametrize("name", ["../x", "/etc/passwd", "a\x00b", "..\\x"])
def test_zip_names_that_try_to_escape_are_invalid(name):
    with pytest.raises(InvalidRun):
        build_zip(one(name), base="python")


@pytest.mark.parametrize("zip_name", ["../evil", "a/b", "", "x" * 65, ".."])
def test_bad_zip_names_are_invalid(zip_name):
    with pytest.raises(InvalidRun) as err:
        build_zip(one("main.py"), base="python", name=zip_name)
    assert err.value.field == "name"
