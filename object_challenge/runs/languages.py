"""The languages a runner offers: how to find their version, build and run them.

Each language says, for a validated file list, which argv builds it (None: nothing to
build) and which argv runs it. Argv lists only: nothing here goes through a shell.
Paths inside the sandbox are relative to the work directory (/box).
"""

import functools
import shutil
import subprocess
from dataclasses import dataclass

from .files import InvalidRun

MODES = ("run", "build", "prove")


class UnknownLanguage(LookupError):
    """422 unknown_language."""


class ModeUnavailable(LookupError):
    """501 mode_unavailable (e.g. prove without gnatprove)."""


@dataclass(frozen=True)
class Language:
    name: str
    extensions: tuple
    version_argv: tuple
    base_files: dict  # name -> text of the base project (zip download)

    def modes(self):
        return ["run", "build"]

    def main_file(self, names, main=None):
        """The file the run starts from: ``main`` if given, else the language's rule."""
        if main is not None:
            if main not in names:
                raise InvalidRun(f"main {main!r} is not one of the files", "main")
            return main
        sources = [n for n in names if n.endswith(self.extensions[0])]
        for preferred in self.preferred_mains:
            if preferred in names:
                return preferred
        if len(sources) == 1:
            return sources[0]
        raise InvalidRun(f"say which file is the main one ('main'): {', '.join(sources) or 'none'}", "main")

    preferred_mains = ()

    def build_argv(self, names, main, mode):
        return None

    def run_argv(self, names, main, args):
        raise NotImplementedError

    @functools.cached_property
    def version(self):
        try:
            out = subprocess.run(
                list(self.version_argv),
                capture_output=True,
                text=True,
                check=False,
                timeout=10,
                env={"PATH": "/usr/bin:/bin"},
            )
        except (OSError, subprocess.TimeoutExpired):
            return None
        if out.returncode != 0:
            return None
        text = (out.stdout or out.stderr).strip().splitlines()
        return self.parse_version(text[0]) if text else None

    def parse_version(self, line):
        return line.split()[-1]

    @property
    def available(self):
        return shutil.which(self.version_argv[0], path="/usr/bin:/bin") is not None


class Python(Language):
    preferred_mains = ("main.py",)

    def build_argv(self, names, main, mode):
        if mode == "build":  # a syntax check: byte-compile every file, write nothing
            return ["/usr/bin/python3", "-c", _PY_CHECK, *[n for n in names if n.endswith(".py")]]
        return None

    def run_argv(self, names, main, args):
        return ["/usr/bin/python3", "-u", main, *args]  # -u: output as it is printed


_PY_CHECK = (
    "import sys\nok = True\nfor n in sys.argv[1:]:\n"
    "    try:\n        compile(open(n, 'rb').read(), n, 'exec')\n"
    "    except SyntaxError as e:\n        ok = False\n"
    "        print(f'{e.filename}:{e.lineno}:{e.offset}: {e.msg}', file=sys.stderr)\n"
    "sys.exit(0 if ok else 1)\n"
)


# line-buffered stdout for C programs writing to our pipe (glibc would buffer 4 KiB)
_STDBUF = ["/usr/bin/stdbuf", "-oL"] if shutil.which("stdbuf", path="/usr/bin") else []


class C(Language):
    preferred_mains = ("main.c",)

    def build_argv(self, names, main, mode):
        sources = [n for n in names if n.endswith(".c")]
        return ["/usr/bin/gcc", "-std=gnu17", "-O2", "-Wall", "-pipe", "-o", "main", *sources, "-lm"]

    def run_argv(self, names, main, args):
        return [*_STDBUF, "./main", *args]


class Ada(Language):
    preferred_mains = ("main.adb",)

    def main_file(self, names, main=None):
        if main is None:
            bodies = [n for n in names if n.endswith(".adb") and n[:-4] + ".ads" not in names]  # a spec means a package
            if "main.adb" not in names and len(bodies) == 1:
                return bodies[0]
        return super().main_file(names, main)

    def modes(self):
        return ["run", "build", "prove"] if shutil.which("gnatprove") else ["run", "build"]

    def build_argv(self, names, main, mode):
        dirs = sorted({n.rsplit("/", 1)[0] for n in names if "/" in n})
        search = [f"-aI{d}" for d in dirs]
        return ["/usr/bin/gnatmake", "-q", "-gnat2022", "-O1", *search, main, "-o", "main"]

    def run_argv(self, names, main, args):
        return ["./main", *args]

    def parse_version(self, line):
        # "GNATMAKE 12.2.0"
        return line.split()[-1]


LANGUAGES = {
    "python": Python(
        "python",
        (".py",),
        ("/usr/bin/python3", "--version"),
        {
            "README.md": "# Python project\n\nRun it with `make run` (or `python3 main.py`).\n",
            "Makefile": "run:\n\tpython3 main.py\n",
        },
    ),
    "c": C(
        "c",
        (".c", ".h"),
        ("/usr/bin/gcc", "-dumpfullversion"),
        {
            "README.md": "# C project\n\nBuild with `make`, run with `./main`.\n",
            "Makefile": "CFLAGS ?= -std=gnu17 -O2 -Wall\n\nmain: $(wildcard *.c)\n"
            "\t$(CC) $(CFLAGS) -o $@ $^ -lm\n\nrun: main\n\t./main\n",
        },
    ),
    "ada": Ada(
        "ada",
        (".adb", ".ads"),
        ("/usr/bin/gnatmake", "--version"),
        {
            "README.md": "# Ada project\n\nBuild with `gprbuild -P main.gpr`, run with `./main`.\n",
            "main.gpr": 'project Main is\n   for Source_Dirs use (".");\n   for Object_Dir use "obj";\n'
            '   for Exec_Dir use ".";\n   for Main use ("main.adb");\n'
            '   package Compiler is\n      for Default_Switches ("Ada") use ("-gnat2022");\n'
            "   end Compiler;\nend Main;\n",
        },
    ),
}


def get(name):
    try:
        return LANGUAGES[name]
    except KeyError:
        raise UnknownLanguage(f"unknown language {name!r}; known: {', '.join(LANGUAGES)}") from None


def check_mode(language, mode):
    if mode not in MODES:
        raise InvalidRun(f"mode must be one of {', '.join(MODES)}", "mode")
    if mode not in language.modes():
        raise ModeUnavailable(f"mode {mode!r} is not available for {language.name} on this runner")


def describe():
    """GET /runs/languages: the languages whose toolchain is installed here."""
    return [
        {"name": lang.name, "version": lang.version, "modes": lang.modes()}
        for lang in LANGUAGES.values()
        if lang.available and lang.version
    ]


def language_of(names):
    """The seed's rule: the language from the files' extensions (.adb/.ads, .c/.h, .py)."""
    for lang in LANGUAGES.values():
        if any(n.endswith(lang.extensions) for n in names):
            return lang.name
    raise UnknownLanguage("cannot tell the language from the file names; send 'language'")
