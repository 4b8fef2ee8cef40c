"""Target for `stackpeek record --native`: native code in a library that is
loaded only after the profile has started.

For PRE seconds it spins in pure Python; then it imports _bz2, whose
extension module and libbz2 the loader maps only now (dlopen), and spends
the rest of its time in compress_loop(), nearly all of it inside libbz2.
A profiler that read the process's mappings once, at the start, cannot
name those frames.

Usage: late_library.py PRE SECONDS
"""
import os
import sys
import time


def spin_in_python(seconds):
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        pass


def compress_loop(seconds):
    import _bz2  # dlopen: _bz2.cpython-*.so and libbz2.so are mapped now
    data = os.urandom(1 << 18) * 4
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        compressor = _bz2.BZ2Compressor(9)
        compressor.compress(data)
        compressor.flush()


def main():
    pre, seconds = float(sys.argv[1]), float(sys.argv[2])
    spin_in_python(pre)
    compress_loop(seconds)


if __name__ == "__main__":
    main()
