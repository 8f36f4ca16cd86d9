#!/usr/bin/python3
"""demo-upstream - the upstream SMTP server of `make run`.

Listens on 127.0.0.1:PORT (default 2526), accepts every message and prints
its envelope and content to stdout.  Runs until SIGTERM or SIGINT.

    /usr/bin/python3 tools/demo-upstream.py [PORT]
"""

import asyncio
import signal
import sys

from aiosmtpd.smtp import SMTP

HOST = "127.0.0.1"
DEFAULT_PORT = 2526


class PrintingHandler:
    """Accept every message and show it."""

    def __init__(self):
        self.count = 0

    async def handle_DATA(self, server, session, envelope):
        self.count += 1
        out = sys.stdout
        out.write(f"=== demo upstream: message {self.count}"
                  f" (EHLO {session.host_name}, from {session.peer[0]})\n")
        out.write(f"MAIL FROM:<{envelope.mail_from}>\n")
        for rcpt in envelope.rcpt_tos:
            out.write(f"RCPT TO:<{rcpt}>\n")
        out.write("---\n")
        text = envelope.original_content.decode("utf-8", "replace")
        out.write(text.replace("\r\n", "\n"))
        if not text.endswith("\n"):
            out.write("\n")
        out.write(f"=== end of message {self.count}\n")
        out.flush()
        return "250 2.0.0 Ok: delivered to the demo upstream"


def main(argv):
    if len(argv) > 2 or (len(argv) == 2 and not argv[1].isdigit()):
        sys.stderr.write("usage: demo-upstream.py [PORT]\n")
        return 2
    port = int(argv[1]) if len(argv) == 2 else DEFAULT_PORT

    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    handler = PrintingHandler()
    try:
        server = loop.run_until_complete(loop.create_server(
            lambda: SMTP(handler, decode_data=False, hostname="demo-upstream",
                         loop=loop),
            host=HOST, port=port))
    except OSError as e:
        sys.stderr.write(f"demo-upstream: cannot listen on {HOST}:{port}: {e}\n")
        return 3

    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, loop.stop)
    print(f"demo upstream listening on {HOST}:{port}", flush=True)
    try:
        loop.run_forever()
    finally:
        server.close()
        loop.run_until_complete(server.wait_closed())
        loop.close()
    print("demo upstream stopped", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
