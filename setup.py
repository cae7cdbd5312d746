"""
Packaging lives in setup.cfg; this file adds the one compiled module.

``mmo.loadgen._fastpath`` is the load generator's frame scanner in C (see
``mmo/loadgen/fastpath.py``).  It is optional: where no C compiler is found
(a slim container image, say) the build goes on without it and the bots
use the same rules in Python.
"""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension("mmo.loadgen._fastpath", ["mmo/loadgen/_fastpath.c"], optional=True),
    ],
)
