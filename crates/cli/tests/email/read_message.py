"""Reads a message the sink kept and checks its DKIM signatures with dkimpy, an
independent verifier, fed the TXT records Rapport shows (argv[2], JSON name -> value).
Prints JSON: headers, parts, and each signature's verdict."""
import json, sys, email, email.policy
import dkim

raw = open(sys.argv[1], "rb").read()
records = json.loads(sys.argv[2])


def dnsfunc(name, timeout=5):
    n = name.decode() if isinstance(name, bytes) else name
    v = records.get(n.rstrip("."))
    return v.encode() if v else None


msg = email.message_from_bytes(raw, policy=email.policy.default)
d = dkim.DKIM(raw)
sigs = [h for h in msg.get_all("DKIM-Signature") or []]
verdicts = []
for i in range(len(sigs)):
    try:
        verdicts.append(bool(d.verify(idx=i, dnsfunc=dnsfunc)))
    except Exception as e:  # a verifier error is a failed check, with its reason
        verdicts.append(f"error: {e}")
parts = {}
for p in msg.walk():
    if p.get_content_maintype() == "text":
        parts[p.get_content_type()] = p.get_content()
print(json.dumps({
    "headers": {k: str(v) for k, v in msg.items() if k != "DKIM-Signature"},
    "content_type": msg.get_content_type(),
    "signatures": [s.split(";")[1].strip() for s in sigs],
    "dkim": verdicts,
    "parts": parts,
}))
