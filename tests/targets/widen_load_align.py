#!/usr/bin/env python3
"""Sets p_align of every PT_LOAD of an ELF64 executable to 2 MiB, in place.

The result is a module whose first segment's address (0x401000, say) is not
a multiple of its declared alignment. The kernel places a non-PIE
executable's segments by page, so it runs as before; a reader that computes
the load bias by aligning p_vaddr down to p_align gets it wrong by the
difference. Usage: widen_load_align.py FILE
"""
import struct
import sys

PT_LOAD, ALIGN = 1, 0x200000

with open(sys.argv[1], "r+b") as f:
    header = f.read(64)
    assert header[:4] == b"\x7fELF" and header[4] == 2, "not an ELF64 file"
    phoff, = struct.unpack_from("<Q", header, 32)
    phentsize, phnum = struct.unpack_from("<HH", header, 54)
    for i in range(phnum):
        at = phoff + i * phentsize
        f.seek(at)
        p_type, = struct.unpack("<I", f.read(4))
        if p_type == PT_LOAD:
            f.seek(at + 48)  # p_align
            f.write(struct.pack("<Q", ALIGN))
