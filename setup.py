"""Build hook: the repository's top-level configs/ ship inside the wheel as thrifty/configs/.

configs/ stays where the docs, tests and `thrifty demo` (run from a checkout) expect it; an installed wheel
carries a copy under the package. Everything else about the package is declared in pyproject.toml.
"""

from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

CONFIGS = Path(__file__).resolve().parent / "configs"


class BuildPyWithConfigs(build_py):
    """build_py that also copies configs/**/*.yaml into the built package (not for editable installs, which
    read the checkout's configs/ directly)."""

    def run(self) -> None:
        super().run()
        if getattr(self, "editable_mode", False):
            return
        for src in sorted(CONFIGS.rglob("*.yaml")):
            dest = Path(self.build_lib, "thrifty", "configs", src.relative_to(CONFIGS))
            self.mkpath(str(dest.parent))
            self.copy_file(str(src), str(dest))


setup(cmdclass={"build_py": BuildPyWithConfigs})
