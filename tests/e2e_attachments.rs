//! Attachments travel, against the real Dovecot and Postfix: a PDF an agent
//! attaches to a reply (a multipart mail as mutt sends it) reaches the
//! requester byte for byte, from the help address; a requester's file is
//! stored and written out by `deskgate tickets attachment`.

mod common;

use std::time::Duration;

use base64::Engine;
use common::*;

const T: Duration = Duration::from_secs(30);
const AGENT: &str = "alice@desk.test";
const CAROL: &str = "carol@customer.test";

/// A binary file that breaks anything treating it as text.
fn pdf() -> Vec<u8> {
    let mut b = b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n".to_vec();
    b.extend((0..=255u8).cycle().take(50_000));
    b.extend_from_slice(b"\n%%EOF\n");
    b
}

/// multipart/mixed as mutt writes it: a text part and a base64 attachment.
fn with_attachment(
    from: &str,
    to: &str,
    subject: &str,
    id: &str,
    text: &str,
    name: &str,
    file: &[u8],
) -> Vec<u8> {
    let b64 = base64::engine::general_purpose::STANDARD.encode(file);
    let lines: Vec<&str> = b64
        .as_bytes()
        .chunks(76)
        .map(|c| std::str::from_utf8(c).unwrap())
        .collect();
    format!(
        "From: {from}\r\nTo: {to}\r\nSubject: {subject}\r\nMessage-ID: <{id}>\r\n\
         Date: Mon, 3 Mar 2025 10:00:00 +0000\r\nMIME-Version: 1.0\r\n\
         Content-Type: multipart/mixed; boundary=\"mutt-b0und4ry\"\r\n\r\n\
         --mutt-b0und4ry\r\nContent-Type: text/plain; charset=us-ascii; format=flowed\r\n\
         Content-Disposition: inline\r\n\r\n{text}\r\n\
         --mutt-b0und4ry\r\nContent-Type: application/pdf\r\n\
         Content-Disposition: attachment; filename=\"{name}\"\r\n\
         Content-Transfer-Encoding: base64\r\n\r\n{}\r\n--mutt-b0und4ry--\r\n",
        lines.join("\r\n")
    )
    .into_bytes()
}

#[tokio::test]
async fn an_agents_pdf_reaches_the_requester_byte_for_byte() {
    let servers = MailServers::start(&[HELP, AGENT, CAROL]);
    let imap = servers.imap();
    let port = servers.smtp_port;
    let config = team_desk()
        .agent(AGENT, Some("Alice"), &["it"])
        .team("it", "")
        .render();
    let mut desk = Deskgate::with_config(&servers, &config);
    desk.start();

    // Carol sends her screenshot-as-PDF: stored on the ticket.
    let hers = pdf().into_iter().rev().collect::<Vec<u8>>();
    let first = with_attachment(
        CAROL,
        HELP,
        "Invoice wrong",
        "c1@customer.test",
        "See the file.",
        "invoice.pdf",
        &hers,
    );
    smtp_send(port, CAROL, &[HELP], &first).await;
    desk.wait_tickets(1, T);
    let out_file = desk.dir.path().join("out.pdf");
    let out = desk.cli(&[
        "tickets",
        "attachment",
        "1000",
        "invoice.pdf",
        "-o",
        out_file.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        std::fs::read(&out_file).unwrap(),
        hers,
        "written out byte for byte"
    );
    let out = desk.cli(&["tickets", "attachment", "1000", "1", "-o", "-"]);
    assert_eq!(out.stdout, hers, "by number, to stdout");
    let out = desk.cli(&["tickets", "attachment", "1000", "nope.pdf"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("it has: 1 invoice.pdf"));

    // Alice answers with the corrected invoice attached, from mutt.
    let note = imap.wait_for(AGENT, "INBOX", 1, T).await.remove(0);
    let r = header(&note, "Reply-To").expect("Reply-To");
    let signed = r
        .trim_start_matches(|c| c != '<')
        .trim_matches(|c| c == '<' || c == '>')
        .to_string();
    let ours = pdf();
    let reply = with_attachment(
        AGENT,
        &signed,
        &format!("Re: {}", subject(&note)),
        "a1@desk.test",
        "Here is the corrected invoice.",
        "invoice-corrected.pdf",
        &ours,
    );
    smtp_send(port, AGENT, &[signed.as_str()], &reply).await;

    let carol = imap.wait_for(CAROL, "INBOX", 2, T).await; // ack + the reply
    let relayed = carol
        .iter()
        .find(|m| String::from_utf8_lossy(m).contains("corrected invoice"))
        .expect("the relayed reply");
    let parsed = deskgate::mail::parse::parse(relayed).unwrap();
    assert_eq!(parsed.from.unwrap().address.as_str(), HELP);
    assert_eq!(parsed.attachments.len(), 1, "the PDF came along");
    assert_eq!(parsed.attachments[0].name, "invoice-corrected.pdf");
    assert_eq!(parsed.attachments[0].content_type, "application/pdf");
    assert_eq!(parsed.attachments[0].bytes, ours, "byte for byte");
    assert!(desk.stop());
}
