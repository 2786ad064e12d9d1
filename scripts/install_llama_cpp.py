"""Install llama-cpp-python compiled for a portable CPU feature set, whatever pip has cached.

llama-cpp-python builds llama.cpp from source, and by default for the build machine's own CPU
(`-march=native`). On cloud VMs that list AMX but trap it, or on any machine other than the one
that compiled it, such a build dies with SIGILL. pip's wheel cache is keyed by the sdist, not by
`CMAKE_ARGS`, so a cached native wheel would be reused silently. This script therefore builds
the wheel without pip's cache into a project-local folder keyed by the build mode, installs it,
and checks `llama_print_system_info()` afterwards.

Modes:
  portable (default)  x86-64: `-DGGML_NATIVE=OFF` and the x86-64-v3 set (AVX, AVX2, FMA, F16C,
                      BMI2), no AVX-512, no AMX. Other architectures: llama.cpp's defaults.
  native (--native)   `-DGGML_NATIVE=ON`: every instruction this CPU reports, for a user who
                      knows the machine allows them (`make demo NATIVE=1`).

Run it with the virtual environment's Python: `.venv/bin/python scripts/install_llama_cpp.py`.
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
WHEEL_CACHE = ROOT / ".cache" / "llama-cpp-wheels"
PORTABLE_X86_FLAGS = (
    "-DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_BMI2=ON "
    "-DGGML_AVX512=OFF -DGGML_AMX_TILE=OFF -DGGML_AMX_INT8=OFF -DGGML_AMX_BF16=OFF"
)
NATIVE_FLAGS = "-DGGML_NATIVE=ON"
# Features a portable x86-64 build must not carry: one machine's VM may trap them.
FORBIDDEN_IN_PORTABLE = ("AMX_INT8", "AVX512")


def read_requirement() -> str:
    """The llama-cpp-python requirement exactly as pyproject.toml pins it."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    for requirement in project["dependencies"]:
        if re.match(r"llama-cpp-python\b", requirement):
            return requirement
    raise SystemExit("pyproject.toml lists no llama-cpp-python dependency")


def choose_cmake_args(native: bool) -> str:
    if native:
        return NATIVE_FLAGS
    return PORTABLE_X86_FLAGS if platform.machine().lower() in {"x86_64", "amd64"} else ""


def describe_mode(native: bool) -> str:
    tag = f"cp{sys.version_info.major}{sys.version_info.minor}-{platform.machine().lower()}"
    return f"{'native' if native else 'portable'}-{tag}"


def read_system_info() -> str | None:
    """llama.cpp's compiled-in features, or None when llama_cpp is not importable here."""
    probe = "import llama_cpp; print(llama_cpp.llama_print_system_info().decode())"
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True)
    return done.stdout if done.returncode == 0 else None


def find_enabled_features(system_info: str, names: tuple[str, ...]) -> list[str]:
    return [name for name in names if re.search(rf"\b{name}\s*=\s*1\b", system_info)]


def read_installed_mode(stamp: Path) -> str | None:
    return stamp.read_text().strip() if stamp.exists() else None


def build_wheel(requirement: str, cmake_args: str, folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, CMAKE_ARGS=cmake_args, FORCE_CMAKE="1")
    print(f"compiling {requirement} with CMAKE_ARGS={cmake_args!r} (several minutes)", flush=True)
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--quiet",
            "--no-cache-dir",
            "--no-deps",
            "--no-binary",
            "llama-cpp-python",
            "--wheel-dir",
            str(folder),
            requirement,
        ],
        check=True,
        env=env,
    )
    return find_wheel(folder)


def find_wheel(folder: Path) -> Path:
    wheels = sorted(folder.glob("llama_cpp_python-*.whl"))
    if not wheels:
        raise SystemExit(f"no llama_cpp_python wheel in {folder}")
    return wheels[-1]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--native", action="store_true", help="compile for this CPU's own instruction set")
    args = parser.parse_args()

    mode = describe_mode(args.native)
    stamp = Path(sys.prefix) / ".llama-cpp-build"
    if read_installed_mode(stamp) == mode and read_system_info() is not None:
        print(f"llama-cpp-python ({mode}) already installed")
        return 0

    requirement = read_requirement()
    folder = WHEEL_CACHE / mode
    wheel = find_wheel(folder) if list(folder.glob("llama_cpp_python-*.whl")) else None
    if wheel is None:
        wheel = build_wheel(requirement, choose_cmake_args(args.native), folder)
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--force-reinstall", "--no-deps", str(wheel)],
        check=True,
    )
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", requirement], check=True)

    system_info = read_system_info()
    if system_info is None:
        raise SystemExit(f"llama_cpp does not import after installing {wheel.name}")
    if not args.native and platform.machine().lower() in {"x86_64", "amd64"}:
        leaked = find_enabled_features(system_info, FORBIDDEN_IN_PORTABLE)
        if leaked:
            raise SystemExit(f"the portable llama.cpp build carries {', '.join(leaked)}; delete {folder} and rerun")
    stamp.write_text(mode + "\n")
    print(f"llama-cpp-python installed ({mode}): {system_info.strip()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
