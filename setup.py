"""Build the Cython kernels of rankref (metadata lives in pyproject.toml).

Environment switches
--------------------
RANKREF_DEBUG_CHECKS=1   compile with bounds/initialisation checks on (slow; for debugging).
RANKREF_NO_OPENMP=1      build serial kernels even where OpenMP is available.

This file must never import torch or cupy.
"""
import os
import shutil
import subprocess
import sys
import sysconfig
import tempfile

import numpy as np
from Cython.Build import cythonize
from setuptools import Extension, setup

DEBUG = os.environ.get("RANKREF_DEBUG_CHECKS", "0") not in ("", "0")

# Cython directives, set once for every kernel.
DIRECTIVES = {
    "language_level": 3,
    "boundscheck": DEBUG,
    "wraparound": False,
    "initializedcheck": DEBUG,
    "nonecheck": False,
    "cdivision": True,
    "embedsignature": True,
}


def _openmp_flags():
    """Return (compile_args, link_args) for OpenMP, or empty lists when it is missing."""
    if os.environ.get("RANKREF_NO_OPENMP", "0") not in ("", "0"):
        return [], []
    if sys.platform == "win32":
        return ["/openmp"], []
    cc = os.environ.get("CC") or sysconfig.get_config_var("CC") or "cc"
    cc = cc.split()[0]
    if shutil.which(cc) is None:
        return [], []
    src = "#include <omp.h>\nint main(void){int n=0;\n#pragma omp parallel reduction(+:n)\nn+=1;\nreturn n>0?0:1;}\n"
    with tempfile.TemporaryDirectory() as tmp:
        c_file = os.path.join(tmp, "probe.c")
        with open(c_file, "w") as fh:
            fh.write(src)
        try:
            res = subprocess.run(
                [cc, "-fopenmp", c_file, "-o", os.path.join(tmp, "probe")],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                timeout=600,  # a hang watchdog: a busy machine must not lose OpenMP
            )
        except (OSError, subprocess.SubprocessError):
            return [], []
    if res.returncode != 0:
        print("rankref: OpenMP not found, building serial kernels", file=sys.stderr)
        return [], []
    return ["-fopenmp"], ["-fopenmp"]


omp_compile, omp_link = _openmp_flags()
opt = [] if sys.platform == "win32" else ["-O3"]

extensions = [
    Extension(
        "rankref._kernels",
        ["rankref/_kernels.pyx"],
        include_dirs=[np.get_include()],
        define_macros=[("NPY_NO_DEPRECATED_API", "NPY_1_9_API_VERSION")],
        extra_compile_args=opt + omp_compile,
        extra_link_args=omp_link,
    )
]

setup(ext_modules=cythonize(extensions, compiler_directives=DIRECTIVES))
