"""A real SMTP server (aiosmtpd) as the relay under test: every message it accepts is
written to DIR as N.eml with N.json (envelope). RCPT to an address starting with
`reject` is refused with 550 (a hard bounce); with `later` with 451 (temporary)."""
import asyncio, json, os, sys, itertools
from aiosmtpd.controller import Controller

port, out = int(sys.argv[1]), sys.argv[2]
counter = itertools.count()


class Sink:
    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if address.startswith("reject"):
            return "550 5.1.1 No such user here"
        if address.startswith("later"):
            return "451 4.3.0 Try again later"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        n = next(counter)
        tmp = os.path.join(out, f"{n}.tmp")
        with open(tmp, "wb") as f:
            f.write(envelope.original_content)
        with open(os.path.join(out, f"{n}.json"), "w") as f:
            json.dump({"mail_from": envelope.mail_from, "rcpt_tos": envelope.rcpt_tos}, f)
        os.rename(tmp, os.path.join(out, f"{n}.eml"))
        return "250 Message accepted for delivery"


c = Controller(Sink(), hostname="127.0.0.1", port=port)
c.start()
print("ready", flush=True)
try:
    asyncio.get_event_loop().run_until_complete(asyncio.sleep(3600))
finally:
    c.stop()
