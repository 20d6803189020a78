"""Prints the portal sign-in link of the newest message in DIR (as the aiosmtpd sink
wrote it) sent to ADDRESS, decoded as a mail client would; prints nothing when none.
Standard library only."""
import email, email.policy, os, re, sys

folder, address = sys.argv[1], sys.argv[2].lower()
names = sorted((n for n in os.listdir(folder) if n.endswith(".eml")), key=lambda n: int(n.split(".")[0]))
for name in reversed(names):
    with open(os.path.join(folder, name), "rb") as f:
        msg = email.message_from_binary_file(f, policy=email.policy.default)
    if address not in str(msg.get("To", "")).lower():
        continue
    for part in msg.walk():
        if part.get_content_maintype() == "text":
            m = re.search(r"https?://[^\s\"<>]+/me/link\?token=[0-9a-f]{64}", part.get_content())
            if m:
                print(m.group(0))
                sys.exit(0)
