"""POST /runs/download: the base project of a language with the user's files inserted."""

import io
import re
import zipfile

from . import languages
from .files import InvalidRun, validate_files

ZIP_NAME = re.compile(r"[A-Za-z0-9._-]{1,64}")
# a fixed timestamp: the same request gives the same bytes
_DATE = (2024, 1, 1, 0, 0, 0)


def check_zip_name(name):
    if name is None:
        return "project"
    if not isinstance(name, str) or not ZIP_NAME.fullmatch(name) or name in (".", ".."):
        raise InvalidRun("name must match [A-Za-z0-9._-]{1,64}", "name")
    return name


def build_zip(files, base=None, name=None):
    """Return (filename, bytes) of the zip. files: the request's list (validated here)."""
    name = check_zip_name(name)
    entries = validate_files(files)
    if base is None:
        base = languages.language_of([n for n, _ in entries])
    project = {n: t.encode() for n, t in languages.get(base).base_files.items()}
    project.update(entries)  # the user's file wins over the base's
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for path in sorted(project):
            info = zipfile.ZipInfo(f"{name}/{path}", date_time=_DATE)
            info.external_attr = 0o644 << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            zf.writestr(info, project[path])
    return f"{name}.zip", buf.getvalue()
