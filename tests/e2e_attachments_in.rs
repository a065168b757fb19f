//! A requester's files reach the agents, against the real Dovecot and
//! Postfix: the agents' notification carries them byte for byte up to
//! `[limits] notification_attachments`, names the rest with the command that
//! writes them out (and the ticket says so); an HTML mail's inline `cid:`
//! pictures travel as named attachments in both directions, and the text
//! says `[image: NAME]` where each was.

mod common;

use std::time::Duration;

use base64::Engine;
use common::*;

const T: Duration = Duration::from_secs(30);
const AGENT: &str = "alice@desk.test";
const CAROL: &str = "carol@customer.test";

fn b64_lines(file: &[u8]) -> String {
    let b64 = base64::engine::general_purpose::STANDARD.encode(file);
    b64.as_bytes()
        .chunks(76)
        .map(|c| std::str::from_utf8(c).unwrap())
        .collect::<Vec<_>>()
        .join("\r\n")
}

/// A binary file that breaks anything treating it as text.
fn pdf(len: usize) -> Vec<u8> {
    let mut b = b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n".to_vec();
    b.extend((0..=255u8).rev().cycle().take(len));
    b.extend_from_slice(b"\n%%EOF\n");
    b
}

/// multipart/mixed with a text part and one base64 part per file.
fn with_files(
    from: &str,
    subject: &str,
    id: &str,
    text: &str,
    files: &[(&str, &str, &[u8])],
) -> Vec<u8> {
    let mut raw = format!(
        "From: {from}\r\nTo: {HELP}\r\nSubject: {subject}\r\nMessage-ID: <{id}>\r\n\
         Date: Mon, 3 Mar 2025 10:00:00 +0000\r\nMIME-Version: 1.0\r\n\
         Content-Type: multipart/mixed; boundary=\"b0und\"\r\n\r\n\
         --b0und\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\n{text}\r\n"
    );
    for (name, ct, bytes) in files {
        raw.push_str(&format!(
            "--b0und\r\nContent-Type: {ct}\r\nContent-Disposition: attachment; filename=\"{name}\"\r\n\
             Content-Transfer-Encoding: base64\r\n\r\n{}\r\n",
            b64_lines(bytes)
        ));
    }
    raw.push_str("--b0und--\r\n");
    raw.into_bytes()
}

/// The signed Reply-To of an agent's notification.
fn reply_address(note: &[u8]) -> String {
    let r = header(note, "Reply-To").expect("Reply-To");
    r.trim_start_matches(|c| c != '<')
        .trim_matches(|c| c == '<' || c == '>')
        .to_string()
}

#[tokio::test]
async fn the_requesters_files_reach_the_agent_within_the_limit_and_the_rest_is_named() {
    let servers = MailServers::start(&[HELP, AGENT, CAROL]);
    let imap = servers.imap();
    let config = team_desk()
        .agent(AGENT, Some("Alice"), &["it"])
        .team("it", "")
        .table("[limits]\nnotification_attachments = \"100 KiB\"")
        .render();
    let mut desk = Deskgate::with_config(&servers, &config);
    desk.start();

    let invoice = pdf(60_000);
    let dump = pdf(150_000);
    let request = with_files(
        CAROL,
        "Invoice wrong",
        "c1@customer.test",
        "The invoice is wrong, and here is the crash dump.",
        &[
            ("invoice.pdf", "application/pdf", &invoice),
            ("crash dump.bin", "application/octet-stream", &dump),
        ],
    );
    smtp_send(servers.smtp_port, CAROL, &[HELP], &request).await;

    let note = imap.wait_for(AGENT, "INBOX", 1, T).await.remove(0);
    let parsed = deskgate::mail::parse::parse(&note).unwrap();
    assert_eq!(parsed.attachments.len(), 1, "only what fits in 100 KiB");
    assert_eq!(parsed.attachments[0].name, "invoice.pdf");
    assert_eq!(parsed.attachments[0].content_type, "application/pdf");
    assert_eq!(parsed.attachments[0].bytes, invoice, "byte for byte");
    assert!(
        parsed.text.contains("The invoice is wrong"),
        "{}",
        parsed.text
    );
    assert!(
        parsed.text.contains(
            "crash dump.bin (application/octet-stream, 146.5 KiB): over the 100.0 KiB a notification carries"
        ),
        "{}",
        parsed.text
    );
    assert!(
        parsed
            .text
            .contains("get it with: deskgate tickets attachment 1000 'crash dump.bin'"),
        "{}",
        parsed.text
    );

    // The ticket says what the agents did not get, in text and JSON.
    let shown =
        String::from_utf8_lossy(&desk.cli(&["tickets", "show", "1000"]).stdout).into_owned();
    let expected = format!(
        "notification sent without crash dump.bin ({} bytes): over the 100.0 KiB",
        dump.len()
    );
    assert!(shown.contains(&expected), "{shown}");
    let t = desk.ticket(1000);
    let ev = t["events"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["event"] == "attachments_not_sent")
        .unwrap_or_else(|| panic!("{t:#}"));
    assert_eq!(ev["mail"], "notification");
    assert_eq!(ev["files"][0]["name"], "crash dump.bin");
    assert_eq!(ev["files"][0]["size"], dump.len() as u64);
    // And the command the notification names writes it out.
    let out = desk.cli(&["tickets", "attachment", "1000", "crash dump.bin", "-o", "-"]);
    assert_eq!(out.stdout, dump);
    assert!(desk.stop());
}

/// An HTML-only mail as Apple Mail sends a screenshot: multipart/related,
/// the picture referenced by `cid:`.
fn html_with_picture(
    from: &str,
    to: &str,
    subject: &str,
    id: &str,
    words: &str,
    png: &[u8],
) -> Vec<u8> {
    format!(
        "From: {from}\r\nTo: {to}\r\nSubject: {subject}\r\nMessage-ID: <{id}>\r\n\
         Date: Mon, 3 Mar 2025 10:00:00 +0000\r\nMIME-Version: 1.0\r\n\
         Content-Type: multipart/related; boundary=\"rel\"; type=\"text/html\"\r\n\r\n\
         --rel\r\nContent-Type: text/html; charset=utf-8\r\n\r\n\
         <html><body><p>{words}</p><img src=\"cid:pic@{id}\"><p>Bye</p></body></html>\r\n\
         --rel\r\nContent-Type: image/png\r\nContent-ID: <pic@{id}>\r\n\
         Content-Transfer-Encoding: base64\r\n\r\n{}\r\n--rel--\r\n",
        b64_lines(png)
    )
    .into_bytes()
}

#[tokio::test]
async fn inline_pictures_travel_as_named_attachments_both_ways() {
    let servers = MailServers::start(&[HELP, AGENT, CAROL]);
    let imap = servers.imap();
    let config = team_desk()
        .agent(AGENT, Some("Alice"), &["it"])
        .team("it", "")
        .render();
    let mut desk = Deskgate::with_config(&servers, &config);
    desk.start();

    let request = std::fs::read("tests/fixtures/inline/html-related.eml").unwrap();
    smtp_send(servers.smtp_port, CAROL, &[HELP], &request).await;
    let note = imap.wait_for(AGENT, "INBOX", 1, T).await.remove(0);
    let parsed = deskgate::mail::parse::parse(&note).unwrap();
    let names: Vec<&str> = parsed.attachments.iter().map(|a| a.name.as_str()).collect();
    assert_eq!(names, ["error dialog.png", "image-2.jpg"]);
    assert!(parsed.attachments[0].bytes.starts_with(b"\x89PNG"));
    let text = &parsed.text;
    let at = text
        .find("[image: error dialog.png]")
        .unwrap_or_else(|| panic!("{text}"));
    assert!(text.find("shows this").unwrap() < at && at < text.find("and then this").unwrap());
    assert!(text.contains("[image: image-2.jpg]"), "{text}");

    // Alice answers with a screenshot of her own, inline in HTML.
    let png: Vec<u8> = b"\x89PNG\r\n\x1a\n"
        .iter()
        .copied()
        .chain(0..=255u8)
        .collect();
    let signed = reply_address(&note);
    let reply = html_with_picture(
        AGENT,
        &signed,
        &format!("Re: {}", subject(&note)),
        "a1@desk.test",
        "Click the button shown here:",
        &png,
    );
    smtp_send(servers.smtp_port, AGENT, &[signed.as_str()], &reply).await;
    let carol = imap.wait_for(CAROL, "INBOX", 2, T).await;
    let relayed = carol
        .iter()
        .map(|m| deskgate::mail::parse::parse(m).unwrap())
        .find(|m| m.text.contains("Click the button"))
        .expect("the relayed reply");
    assert_eq!(relayed.attachments.len(), 1);
    assert_eq!(relayed.attachments[0].name, "image-1.png");
    assert_eq!(relayed.attachments[0].bytes, png, "byte for byte");
    let at = relayed
        .text
        .find("[image: image-1.png]")
        .expect(&relayed.text);
    assert!(at < relayed.text.find("Bye").unwrap(), "{}", relayed.text);
    assert!(desk.stop());
}
