"""The user's file list: validation (pure) and writing into a work directory.

Every rule of issue 14 that ends in 400 ``invalid_run`` raises ``InvalidRun(message,
field)``; the view layer maps it to the error shape. Writing never follows a link and
never overwrites: each directory is opened relative to its parent with O_NOFOLLOW and
each file is created with O_EXCL, so a name cannot reach outside the work directory
even if something raced a symlink into it.
"""

import base64
import binascii
import os
import stat

MAX_FILES = 50
MAX_TOTAL_BYTES = 512 * 1024
MAX_NAME_BYTES = 255
ENCODINGS = ("utf8", "base64")


class InvalidRun(ValueError):
    """A client's run request breaks a rule (400 invalid_run)."""

    def __init__(self, message, field):
        super().__init__(message)
        self.message = message
        self.field = field


def check_name(name, field="files[].name"):
    """Return the name split into its parts, or raise InvalidRun saying why not."""
    if not isinstance(name, str) or not name:
        raise InvalidRun("a file name must be a non-empty string", field)
    if any(ord(ch) < 32 or ord(ch) == 127 for ch in name):
        raise InvalidRun(f"file name {name!r} contains NUL or a control character", field)
    if len(name.encode("utf-8", "surrogatepass")) > MAX_NAME_BYTES:
        raise InvalidRun(f"file name is over {MAX_NAME_BYTES} bytes", field)
    if "\\" in name:
        raise InvalidRun(f"file name {name!r} contains a backslash; use '/'", field)
    if name.startswith("/"):
        raise InvalidRun(f"file name {name!r} is absolute; give a path inside the project", field)
    parts = name.split("/")
    if ".." in parts or ".." in name:
        raise InvalidRun(f"file name {name!r} contains '..'", field)
    if any(part in ("", ".") for part in parts):
        raise InvalidRun(f"file name {name!r} has an empty or '.' component", field)
    return parts


def decode_content(entry, index):
    field = f"files[{index}].content"
    content = entry.get("content", "")
    encoding = entry.get("encoding", "utf8")
    if encoding not in ENCODINGS:
        raise InvalidRun(f"encoding must be one of {', '.join(ENCODINGS)}", f"files[{index}].encoding")
    if not isinstance(content, str):
        raise InvalidRun("content must be a string", field)
    if encoding == "utf8":
        try:
            return content.encode("utf-8")
        except UnicodeEncodeError:
            raise InvalidRun("content is not valid UTF-8 text; send it as base64", field) from None
    try:
        return base64.b64decode(content, validate=True)
    except (binascii.Error, ValueError):
        raise InvalidRun("content is not valid base64", field) from None


def validate_files(files, *, name_key="name", content_key="content"):
    """Check a request's ``files`` list; return [(name, bytes)] in the given order.

    ``name_key``/``content_key`` let the seed's own shape (``basename``/``contents``)
    go through the same rules.
    """
    if not isinstance(files, list) or not files:
        raise InvalidRun("files must be a non-empty list of {name, content}", "files")
    if len(files) > MAX_FILES:
        raise InvalidRun(f"at most {MAX_FILES} files per run", "files")
    seen, out, total = set(), [], 0
    for index, entry in enumerate(files):
        if not isinstance(entry, dict):
            raise InvalidRun("each file must be an object {name, content}", f"files[{index}]")
        name = entry.get(name_key)
        check_name(name, f"files[{index}].{name_key}")
        if name in seen:
            raise InvalidRun(f"file name {name!r} repeats", f"files[{index}].{name_key}")
        seen.add(name)
        data = decode_content({"content": entry.get(content_key, ""), "encoding": entry.get("encoding", "utf8")}, index)
        total += len(data)
        if total > MAX_TOTAL_BYTES:
            raise InvalidRun(f"files add up to more than {MAX_TOTAL_BYTES // 1024} KiB", "files")
        out.append((name, data))
    _check_prefix_clashes(seen)
    return out


def _check_prefix_clashes(names):
    # "a" and "a/b" cannot both be files
    for name in names:
        parts = name.split("/")
        for i in range(1, len(parts)):
            if "/".join(parts[:i]) in names:
                raise InvalidRun(f"{name!r} needs {'/'.join(parts[:i])!r} to be a directory", "files")


def validate_args(args):
    if args is None:
        return []
    if not isinstance(args, list) or not all(isinstance(a, str) for a in args):
        raise InvalidRun("args must be a list of strings", "args")
    if any("\x00" in a for a in args):
        raise InvalidRun("args cannot contain NUL", "args")
    return list(args)


def write_files(work_dir, files, mode=0o644):
    """Create each (name, bytes) under work_dir without following any link."""
    root = os.open(work_dir, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
    try:
        for name, data in files:
            parts = check_name(name)
            _write_one(root, parts, data, mode)
    finally:
        os.close(root)


def _write_one(root, parts, data, mode):
    fds = []
    dir_fd = root
    try:
        for part in parts[:-1]:
            try:
                os.mkdir(part, 0o755, dir_fd=dir_fd)
            except FileExistsError:
                pass
            dir_fd = os.open(part, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=dir_fd)
            fds.append(dir_fd)
        fd = os.open(parts[-1], os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, mode, dir_fd=dir_fd)
        try:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                raise InvalidRun(f"{'/'.join(parts)} is not a regular file", "files")
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
        finally:
            os.close(fd)
    finally:
        for fd in fds:
            os.close(fd)
