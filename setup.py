"""Builds the compiled epoch (softmax_cli/_epoch.c); everything else is in pyproject.toml.

The extension is optional: where no C compiler is found, the install goes on and training takes its NumPy loop.
"""

from setuptools import Extension, setup

setup(ext_modules=[Extension("softmax_cli._epoch", ["softmax_cli/_epoch.c"], depends=["softmax_cli/_epoch_kernel.h"],
                             extra_compile_args=["-O3"],
                             optional=True)])
