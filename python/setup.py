"""Build the nonoproxy extension against the library of the enclosing source tree.

By default libnonoproxy is built here with CMake from the parent directory (Release, library
only) and its prelinked archive, lib/dist/libnonoproxy.a, is linked into the extension: that
archive holds the library with its http-parser and mbedTLS, every symbol but nonoproxy_* local,
so the extension needs neither library at run time (only libsecret when the library was built
with keyring support). Environment:

  NONOPROXY_LIBRARY   use this prelinked libnonoproxy.a (e.g. from `cmake --install`) instead
                      of building one; the headers come from NONOPROXY_INCLUDE_DIR, else from
                      the tree's include/
  NONOPROXY_CMAKE_ARGS  extra arguments for the CMake configure step (space-separated)
"""

import os
import re
import shlex
import subprocess

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)


def tree_version():
    """The project version from the tree's CMakeLists.txt (one version for C and Python)."""
    with open(os.path.join(ROOT, "CMakeLists.txt"), encoding="utf-8") as f:
        m = re.search(r"project\(nonoproxy VERSION ([0-9.]+)", f.read())
    if m is None:
        raise RuntimeError("no project(nonoproxy VERSION ...) in %s/CMakeLists.txt" % ROOT)
    return m.group(1)


def pkg_config_libs(package):
    out = subprocess.run(["pkg-config", "--libs", package], check=True,
                         stdout=subprocess.PIPE).stdout.decode()
    return shlex.split(out)


class BuildWithLibrary(build_ext):
    """build_ext that first provides the prelinked libnonoproxy.a and links it."""

    def run(self):
        archive, with_secret = self.library()
        for ext in self.extensions:
            ext.extra_objects.append(archive)
            if with_secret:
                ext.extra_link_args.extend(pkg_config_libs("libsecret-1"))
        super().run()

    def library(self):
        given = os.environ.get("NONOPROXY_LIBRARY")
        if given:
            return os.path.abspath(given), os.environ.get("NONOPROXY_WITH_LIBSECRET", "1") != "0"
        build_dir = os.path.join(os.path.abspath(self.build_temp), "libnonoproxy")
        args = ["cmake", "-S", ROOT, "-B", build_dir, "-DCMAKE_BUILD_TYPE=Release",
                "-DNONOPROXY_BUILD_TESTS=OFF", "-DNONOPROXY_BUILD_CLI=OFF",
                "-DNONOPROXY_BUILD_BENCH=OFF", "-DNONOPROXY_BUILD_PYTHON=OFF",
                "-DNONOPROXY_INSTALL=ON", "-DNONOPROXY_WERROR=OFF"]
        args += shlex.split(os.environ.get("NONOPROXY_CMAKE_ARGS", ""))
        subprocess.run(args, check=True)
        subprocess.run(["cmake", "--build", build_dir, "--target", "nonoproxy_dist",
                        "-j%d" % min(2, os.cpu_count() or 1)], check=True)
        with open(os.path.join(build_dir, "CMakeCache.txt"), encoding="utf-8") as f:
            with_secret = re.search(r"^NONOPROXY_WITH_LIBSECRET:BOOL=ON$", f.read(), re.M)
        return os.path.join(build_dir, "lib", "dist", "libnonoproxy.a"), bool(with_secret)


setup(
    version=tree_version(),
    ext_modules=[
        Extension(
            "nonoproxy._nonoproxy",
            sources=["src/_nonoproxy.c"],
            include_dirs=[os.environ.get("NONOPROXY_INCLUDE_DIR") or os.path.join(ROOT, "include")],
            libraries=["pthread"],
            # Export only PyInit__nonoproxy, not the archive's nonoproxy_* functions.
            extra_link_args=["-Wl,--exclude-libs,ALL"],
        )
    ],
    cmdclass={"build_ext": BuildWithLibrary},
)
