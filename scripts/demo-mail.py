#!/usr/bin/env python3
"""Plays the requester and the agent in the local demo: send a mail, wait for
one and show it in a few readable lines, answer the newest one.

  demo-mail.py send SMTP_PORT FROM TO SUBJECT BODY [FILE...]
  demo-mail.py wait IMAP_PORT USER COUNT [TIMEOUT_SECONDS]   # shows the newest mail
  demo-mail.py reply IMAP_PORT SMTP_PORT USER BODY [FILE...] # answers the newest mail

Every user's password is "secret" (tests/support/mailservers.sh).
"""
import email
import email.policy
import email.utils
import imaplib
import mimetypes
import os
import smtplib
import sys
import time
from email.message import EmailMessage

BODY_LINES = 12


def attach(msg, files):
    for path in files:
        ctype = mimetypes.guess_type(path)[0] or "application/octet-stream"
        main, sub = ctype.split("/", 1)
        with open(path, "rb") as f:
            msg.add_attachment(f.read(), maintype=main, subtype=sub,
                               filename=os.path.basename(path))


def submit(port, msg):
    with smtplib.SMTP("127.0.0.1", int(port), timeout=10) as s:
        s.send_message(msg)


def send(port, sender, to, subject, body, *files):
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = to
    msg["Subject"] = subject
    msg["Date"] = email.utils.formatdate()
    msg["Message-ID"] = email.utils.make_msgid(domain=sender.split("@")[1])
    msg.set_content(body)
    attach(msg, files)
    submit(port, msg)
    names = "".join(f", attached {os.path.basename(f)}" for f in files)
    print(f"sent from {sender} to {to}: {subject}{names}")


def newest(port, user, count, timeout=30):
    """The newest mail of USER's INBOX once it holds COUNT mails."""
    deadline = time.time() + float(timeout)
    while True:
        with imaplib.IMAP4("127.0.0.1", int(port)) as m:
            m.login(user, "secret")
            typ, data = m.select("INBOX", readonly=True)
            n = int(data[0])
            if n >= int(count):
                typ, data = m.fetch(str(n), "(BODY.PEEK[])")
                return email.message_from_bytes(data[0][1], policy=email.policy.default)
        if time.time() > deadline:
            sys.exit(f"no mail #{count} for {user} within {timeout}s")
        time.sleep(0.2)


def show(msg):
    """A mail as a person sees it: who, what, the start of the text, the files."""
    for h in ("From", "To", "Reply-To", "Subject"):
        if msg[h]:
            print(f"{h + ':':<10}{msg[h]}")
    body = msg.get_body(preferencelist=("plain", "html"))
    lines = body.get_content().splitlines() if body else []
    shown = [l for i, l in enumerate(lines) if l.strip() or (i and lines[i - 1].strip())]
    for line in shown[:BODY_LINES]:
        print(f"  | {line}")
    if len(shown) > BODY_LINES:
        print(f"  | … ({len(shown) - BODY_LINES} more lines)")
    for part in msg.iter_attachments():
        size = len(part.get_payload(decode=True) or b"")
        print(f"Attached: {part.get_filename()} ({part.get_content_type()}, {size} bytes)")


def wait(port, user, count, timeout=30):
    show(newest(port, user, count, timeout))


def reply(imap_port, smtp_port, user, body, *files):
    """Answers the newest mail as a mail client does: to its Reply-To, "Re:",
    threaded under it."""
    orig = newest(imap_port, user, 1, 5)
    to = orig["Reply-To"] or orig["From"]
    msg = EmailMessage()
    msg["From"] = user
    msg["To"] = to
    subject = str(orig["Subject"])
    msg["Subject"] = subject if subject.lower().startswith("re:") else f"Re: {subject}"
    msg["Date"] = email.utils.formatdate()
    msg["Message-ID"] = email.utils.make_msgid(domain=user.split("@")[1])
    if orig["Message-ID"]:
        msg["In-Reply-To"] = orig["Message-ID"]
        msg["References"] = " ".join(filter(None, [orig["References"], orig["Message-ID"]]))
    msg.set_content(body)
    attach(msg, files)
    submit(smtp_port, msg)
    names = "".join(f", attached {os.path.basename(f)}" for f in files)
    print(f"{user} replied to {to}: {msg['Subject']}{names}")
    for line in body.splitlines():
        print(f"  | {line}")


if __name__ == "__main__":
    cmd, args = sys.argv[1], sys.argv[2:]
    {"send": send, "wait": wait, "reply": reply}[cmd](*args)
