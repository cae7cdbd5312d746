"""Packaging lives in setup.cfg; this shim lets older tools build mmo."""

from setuptools import setup

setup()
