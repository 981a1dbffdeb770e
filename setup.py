"""The compiled epoch's build flags that pyproject.toml cannot say: a wheel fit to publish.

Everything else (the extension, its sources, that it is optional) is declared in pyproject.toml.
"""

import sys

from setuptools import setup
from setuptools.command.build_ext import build_ext


class BuildExt(build_ext):
    """build_ext for a wheel to hand on: no debug info, no symbols, no run-time path into this machine's Python."""

    def build_extensions(self):
        if self.compiler.compiler_type == "unix":
            # Pythons built by pyenv (and some others) link every extension with -Wl,-rpath into their own lib
            # folder, which the wheel would then carry to other machines; the extension needs no library path.
            self.compiler.linker_so = [arg for arg in self.compiler.linker_so if not arg.startswith("-Wl,-rpath")]
            for extension in self.extensions:
                extension.extra_compile_args = [*extension.extra_compile_args, "-g0"]  # after CFLAGS' -g: wins
                if sys.platform.startswith("linux"):
                    extension.extra_link_args = [*extension.extra_link_args, "-s"]  # no symbol table either
        super().build_extensions()


setup(cmdclass={"build_ext": BuildExt})
