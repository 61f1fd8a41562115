"""Code-generation helpers: their doctests, and literals a C compiler accepts."""

import doctest
import subprocess

import numpy as np

from edgernn.backends import codegen


def test_doctests():
    assert doctest.testmod(codegen).failed == 0


def test_float_literals_compile_and_round_trip(tmp_path):
    values = [1.0, -2.0, 0.00390625, 1e-10, 3.4028235e38, 0.1, 123456.0]
    src = tmp_path / "f.c"
    src.write_text("#include <stdio.h>\nint main(void){\n" + "".join(
        f'printf("%.9g\\n", (double){codegen.c_float(v)});\n' for v in values) + "return 0;}\n")
    subprocess.run(["gcc", "-std=c99", "-Wall", "-Wextra", "-Werror", "-pedantic", str(src), "-o",
                    str(tmp_path / "f")], check=True)
    out = subprocess.run([str(tmp_path / "f")], capture_output=True, text=True, check=True).stdout.split()
    assert [np.float32(float(o)) for o in out] == [np.float32(v) for v in values]
