"""setuptools reads everything from pyproject.toml except cffi_modules, which only setup() takes."""

from setuptools import setup

setup(cffi_modules=["native/build_ffi.py:ffibuilder"])
