"""The compiled epoch's build flags that pyproject.toml cannot say: a wheel fit to publish.

Everything else (the extension, its sources, that it is optional) is declared in pyproject.toml.
"""

import platform
import sys

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

# The compiled epoch's second build, for AVX2 with FMA: the same source, its vectors eight floats wide
# (_epoch.c, compiled.py); x86-64 with GCC or Clang only, and optional as the first.
AVX2 = platform.machine().lower() in ("x86_64", "amd64") and not sys.platform.startswith("win")


class BuildExt(build_ext):
    """build_ext for a wheel to hand on: no debug info, no symbols, no run-time path into this machine's Python."""

    def finalize_options(self):
        # the AVX2 build joins the distribution's extensions before build_ext takes them in (and sets them up)
        extensions = self.distribution.ext_modules or []
        names = [extension.name for extension in extensions]
        if AVX2 and "softmax_cli._epoch" in names and "softmax_cli._epoch_avx2" not in names:
            epoch = extensions[names.index("softmax_cli._epoch")]
            extensions.append(Extension("softmax_cli._epoch_avx2", list(epoch.sources), optional=True,
                                        extra_compile_args=[*epoch.extra_compile_args, "-mavx2", "-mfma"]))
        super().finalize_options()

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
