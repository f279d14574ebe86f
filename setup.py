"""Build hook: the hardware profiles of ``targets/`` (data, kept at the repository root)
go into the built package as ``xsim/targets``, so an installed xsim finds them without
a source tree.  Everything else is configured in pyproject.toml."""
import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py


class BuildPy(build_py):
    def run(self) -> None:
        super().run()
        shutil.copytree(Path(__file__).parent / "targets",
                        Path(self.build_lib) / "xsim" / "targets", dirs_exist_ok=True)


if __name__ == "__main__":
    setup(cmdclass={"build_py": BuildPy})
