#!/usr/bin/env python3
"""Plays the requester in the local demo: send a mail, wait for the answer.

  demo-mail.py send SMTP_PORT FROM TO SUBJECT BODY
  demo-mail.py wait IMAP_PORT USER COUNT [TIMEOUT_SECONDS]   # prints the newest mail
"""
import email.utils
import imaplib
import smtplib
import sys
import time
from email.message import EmailMessage


def send(port, sender, to, subject, body):
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = to
    msg["Subject"] = subject
    msg["Date"] = email.utils.formatdate()
    msg["Message-ID"] = email.utils.make_msgid(domain=sender.split("@")[1])
    msg.set_content(body)
    with smtplib.SMTP("127.0.0.1", int(port), timeout=10) as s:
        s.send_message(msg)
    print(f"sent {msg['Message-ID']} from {sender} to {to}: {subject}")


def wait(port, user, count, timeout=30):
    deadline = time.time() + float(timeout)
    while True:
        with imaplib.IMAP4("127.0.0.1", int(port)) as m:
            m.login(user, "secret")
            typ, data = m.select("INBOX", readonly=True)
            n = int(data[0])
            if n >= int(count):
                typ, data = m.fetch(str(n), "(BODY.PEEK[])")
                print(data[0][1].decode("utf-8", "replace"))
                return
        if time.time() > deadline:
            sys.exit(f"no mail #{count} for {user} within {timeout}s")
        time.sleep(0.2)


if __name__ == "__main__":
    cmd, args = sys.argv[1], sys.argv[2:]
    {"send": send, "wait": wait}[cmd](*args)
