#!/usr/bin/env python3
"""An independent TFRecord reader and writer for pstrain's tests: only the Python standard
library (zlib, gzip) and a CRC-32C written here from the algorithm's definition (reflected
polynomial 0x82F63B78), sharing no code with common/io/tfrecord.c.

  tfrecord_check.py read FILE none|zlib|gzip
      Verifies both checksums of every record; prints "<index> <length> <crc32 of payload>"
      per record (zlib.crc32, a different checksum than the file's) and "records N". Exits 1
      with a message on a bad checksum or truncation.
  tfrecord_check.py deframe FILE OUTDIR
      The same checks, then writes each payload to OUTDIR/<index>.bin (for protoc --decode).
  tfrecord_check.py write FILE none|zlib|gzip N
      Writes N records; record i holds (i * 7 + j) & 0xff for j < (i * 37) % 1000.
"""
import gzip
import os
import struct
import sys
import zlib


def _table():
    t = []
    for i in range(256):
        c = i
        for _ in range(8):
            c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
        t.append(c)
    return t


TABLE = _table()


def crc32c(data):
    c = 0xFFFFFFFF
    for b in data:
        c = TABLE[(c ^ b) & 0xFF] ^ (c >> 8)
    return c ^ 0xFFFFFFFF


def mask(c):
    return ((((c >> 15) | (c << 17)) & 0xFFFFFFFF) + 0xA282EAD8) & 0xFFFFFFFF


assert crc32c(b"123456789") == 0xE3069283


def decompress(raw, comp):
    if comp == "none":
        return raw
    if comp == "zlib":
        return zlib.decompress(raw)
    if comp == "gzip":
        return gzip.decompress(raw)
    raise SystemExit("unknown compression " + comp)


def records(path, comp):
    with open(path, "rb") as f:
        data = decompress(f.read(), comp)
    out, off = [], 0
    while off < len(data):
        if len(data) - off < 12:
            raise SystemExit("%s: record %d truncated header" % (path, len(out)))
        (n,) = struct.unpack("<Q", data[off:off + 8])
        (lc,) = struct.unpack("<I", data[off + 8:off + 12])
        if mask(crc32c(data[off:off + 8])) != lc:
            raise SystemExit("%s: record %d bad length checksum" % (path, len(out)))
        if len(data) - off - 12 < n + 4:
            raise SystemExit("%s: record %d truncated data" % (path, len(out)))
        payload = data[off + 12:off + 12 + n]
        (dc,) = struct.unpack("<I", data[off + 12 + n:off + 16 + n])
        if mask(crc32c(payload)) != dc:
            raise SystemExit("%s: record %d bad data checksum" % (path, len(out)))
        out.append(payload)
        off += 16 + n
    return out


def frame(payload):
    head = struct.pack("<Q", len(payload))
    return (head + struct.pack("<I", mask(crc32c(head))) + payload +
            struct.pack("<I", mask(crc32c(payload))))


def main(argv):
    if len(argv) == 4 and argv[1] == "read":
        recs = records(argv[2], argv[3])
        for i, r in enumerate(recs):
            print(i, len(r), "%08x" % (zlib.crc32(r) & 0xFFFFFFFF))
        print("records", len(recs))
    elif len(argv) == 4 and argv[1] == "deframe":
        recs = records(argv[2], "none")
        for i, r in enumerate(recs):
            with open(os.path.join(argv[3], "%d.bin" % i), "wb") as f:
                f.write(r)
        print("records", len(recs))
    elif len(argv) == 5 and argv[1] == "write":
        n = int(argv[4])
        data = b"".join(frame(bytes((i * 7 + j) & 0xFF for j in range((i * 37) % 1000)))
                        for i in range(n))
        if argv[3] == "zlib":
            data = zlib.compress(data)
        elif argv[3] == "gzip":
            data = gzip.compress(data)
        with open(argv[2], "wb") as f:
            f.write(data)
    else:
        raise SystemExit(__doc__)


if __name__ == "__main__":
    main(sys.argv)
