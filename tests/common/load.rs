//! The benchmarks' mail: N printer complaints of about 1.8 KB each, appended
//! to the help mailbox over 4 IMAP connections.

use super::{mail, Imap, HELP};

pub fn printer_body() -> String {
    // About 1.8 KB, like the mails in the notes' measurements.
    let line = "The shared printer on the third floor shows error 0x42 again after the update.\r\n";
    line.repeat(20)
}

pub async fn load_printer_mails(imap: Imap, n: usize) {
    let body = printer_body();
    let conns = 4;
    let mut tasks = Vec::new();
    for c in 0..conns {
        let body = body.clone();
        tasks.push(tokio::spawn(async move {
            let mut s = imap.login(HELP).await;
            for i in (c..n).step_by(conns) {
                let raw = mail(
                    &format!("user{i}@outside.example"),
                    HELP,
                    &format!("Printer problem number {i}"),
                    &format!("bench{i}@outside.example"),
                    "",
                    &body,
                );
                s.append("INBOX", None, None, &raw).await.expect("append");
            }
            s.logout().await.ok();
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
}
