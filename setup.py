"""Ship the lab itself (compose.yaml and services/) inside the labctl package.

They stay at the top of the repository, where a reader looks for them; a
wheel carries a copy as package data in labctl/data/, which labctl reads
through importlib.resources when it does not run from a clone
(labctl/home.py). An editable install reads the clone's own files instead.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

HERE = Path(__file__).resolve().parent
LAB_FILES = ("compose.yaml", "services")


class build_py_with_lab(build_py):
    def run(self) -> None:
        super().run()
        if getattr(self, "editable_mode", False):
            return      # labctl finds the clone's compose.yaml itself
        target = Path(self.build_lib) / "labctl" / "data"
        if target.exists():
            shutil.rmtree(target)
        target.mkdir(parents=True)
        for name in LAB_FILES:
            source = HERE / name
            if source.is_dir():
                # copytree keeps each file's mode: lab-init and healthcheck stay executable.
                shutil.copytree(source, target / name,
                                ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
            else:
                shutil.copy2(source, target / name)


setup(cmdclass={"build_py": build_py_with_lab})
