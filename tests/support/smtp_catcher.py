"""A real SMTP server for otpd's tests: accepts every message and writes it,
as received, to DIR/<n>.eml (written to a temporary name, then renamed, so a
reader never sees half a message).

    python smtp_catcher.py --dir DIR [--port PORT]

Prints "READY <port>" once it accepts connections; runs until killed.
"""

import argparse
import asyncio
import itertools
import os
import sys

from aiosmtpd.smtp import SMTP


class Catcher:
    def __init__(self, directory):
        self.directory = directory
        self.counter = itertools.count(1)

    async def handle_DATA(self, server, session, envelope):
        n = next(self.counter)
        final = os.path.join(self.directory, f"{os.getpid()}-{n:06d}.eml")
        partial = final + ".part"
        with open(partial, "wb") as f:
            f.write(envelope.original_content or envelope.content)
            f.flush()
            os.fsync(f.fileno())
        os.rename(partial, final)
        return "250 Message accepted"


async def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--dir", required=True)
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args()
    os.makedirs(args.dir, exist_ok=True)
    catcher = Catcher(args.dir)
    loop = asyncio.get_running_loop()
    server = await loop.create_server(
        lambda: SMTP(catcher, hostname="catcher.test", enable_SMTPUTF8=True),
        host="127.0.0.1",
        port=args.port,
        reuse_address=True,
    )
    port = server.sockets[0].getsockname()[1]
    print(f"READY {port}", flush=True)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        sys.exit(0)
