#!/usr/bin/env python3
"""Counts the frames in a SQLite WAL by the b-tree (table or index) they belong to.

    bench/wal_census.py PATH/otpd.db

Read it after stopping otpd with kill -9 (a clean stop checkpoints and
truncates the WAL): the WAL then holds every frame written since its last
restart. A frame is one page image; a page written by several commits is
counted once per commit, which is what the disk pays for.
"""

import collections
import sqlite3
import struct
import sys

WAL_HEADER = 32
FRAME_HEADER = 24


def frames(wal: bytes):
    """(page number, is a commit) of each frame of the WAL's current generation."""
    page_size = struct.unpack(">I", wal[8:12])[0]
    salts = wal[16:24]
    offset = WAL_HEADER
    # After a restart the file still holds older frames beyond the new ones;
    # their salts differ from the header's.
    while offset + FRAME_HEADER + page_size <= len(wal) and wal[offset + 8 : offset + 16] == salts:
        page, commit_size = struct.unpack(">II", wal[offset : offset + 8])
        yield page, commit_size != 0
        offset += FRAME_HEADER + page_size


def main(path: str) -> None:
    with open(path + "-wal", "rb") as f:
        wal = f.read()
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    owner = dict(db.execute("SELECT pageno, name || ' (' || pagetype || ')' FROM dbstat"))
    counts = collections.Counter()
    commits = 0
    for page, is_commit in frames(wal):
        counts[owner.get(page, "free or new")] += 1
        commits += is_commit
    total = sum(counts.values())
    print(f"{total} frames in {commits} commits ({total / max(commits, 1):.1f} per commit)")
    for name, n in counts.most_common():
        print(f"{n:>9} {100 * n / total:5.1f} %  {name}")


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    main(sys.argv[1])
