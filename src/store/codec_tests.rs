//! Every stored record survives the compact encoding, and the JSON of older
//! releases still reads (the serde attributes that only a self-describing
//! format can read are all here: flatten, tagged and untagged enums,
//! skip_serializing_if).

use chrono::{DateTime, Utc};
use serde::de::DeserializeOwned;
use serde::Serialize;

use super::codec::{decode_record, encode_record, PACK, PACK_ZSTD};
use super::records::*;
use crate::mail::address::{EmailAddress, Party};
use crate::mail::outgoing::{AutoSubmitted, Outgoing, OutgoingAttachment};

fn at(s: i64) -> DateTime<Utc> {
    DateTime::<Utc>::from_timestamp(1_700_000_000 + s, 123_456_789).unwrap()
}

fn addr(a: &str) -> EmailAddress {
    EmailAddress::parse(a).unwrap()
}

fn party(a: &str) -> Party {
    Party {
        name: Some("Ann Example".into()),
        address: addr(a),
    }
}

/// Compact and JSON both give the value back; the compact one is smaller.
fn round_trip<V: Serialize + DeserializeOwned + PartialEq + std::fmt::Debug>(v: &V) {
    let packed = encode_record(v).unwrap();
    assert!(matches!(packed[0], PACK | PACK_ZSTD));
    assert_eq!(&decode_record::<V>(&packed).unwrap(), v);
    let json = serde_json::to_vec(v).unwrap();
    assert_eq!(&decode_record::<V>(&json).unwrap(), v, "old JSON");
    assert!(
        packed.len() < json.len(),
        "{} >= {}",
        packed.len(),
        json.len()
    );
}

fn ticket() -> Ticket {
    let mut t = Ticket::new(7, "Printer".into(), party("a@b.c"), "help", at(0));
    t.tags = vec!["vip".into()];
    t.watchers = vec![addr("w@b.c")];
    t.links = vec![Link {
        kind: LinkKind::Parent,
        ticket: 3,
    }];
    t.effort = vec![Effort {
        agent: "x@desk".into(),
        minutes: 5,
        at: at(1),
    }];
    t.merged_from = vec![4];
    t.set_status(Status::Waiting, at(2));
    t.auto_sent
        .record(at(3), std::time::Duration::from_secs(3600));
    t
}

fn outgoing(attachments: Vec<OutgoingAttachment>) -> Outgoing {
    Outgoing {
        from: party("help@desk.test"),
        to: vec![party("a@b.c")],
        reply_to: None,
        subject: "[#7] Printer".into(),
        body: "Hello,\n\nthank you for writing.\n".repeat(30),
        message_id: "ack.7@desk.test".into(),
        in_reply_to: Some("x@b.c".into()),
        references: vec!["x@b.c".into()],
        auto_submitted: Some(AutoSubmitted::AutoReplied),
        x_loop: addr("help@desk.test"),
        date: std::time::SystemTime::UNIX_EPOCH
            + std::time::Duration::from_nanos(1_700_000_000_123_456_789),
        attachments,
    }
}

fn entry(composed: Option<Outgoing>) -> OutboxEntry {
    OutboxEntry {
        id: 1,
        ticket: Some(7),
        kind: "acknowledgement".into(),
        message_id: "ack.7@desk.test".into(),
        envelope_from: addr("help@desk.test"),
        recipients: vec![addr("a@b.c")],
        raw: if composed.is_none() {
            "Subject: x\r\n\r\nbody".into()
        } else {
            String::new()
        },
        composed,
        created_at: at(0),
        attempts: 2,
        next_attempt_at: at(60),
        last_error: Some("451 try later".into()),
        failed: false,
    }
}

#[test]
fn every_record_type_round_trips() {
    round_trip(&ticket());
    round_trip(&Ticket::new(1, "s".into(), party("a@b.c"), "help", at(0)));
    round_trip(&MessageRecord {
        ticket: 7,
        seq: 0,
        direction: Direction::Inbound,
        from: Some(party("a@b.c")),
        to: vec![party("help@desk.test")],
        cc: vec![],
        subject: "Printer".into(),
        date: Some(at(0)),
        recorded_at: at(1),
        message_id: Some("x@b.c".into()),
        text: "The printer shows error 0x42.\n".repeat(40),
        attachments: vec![AttachmentMeta {
            name: "a.pdf".into(),
            content_type: "application/pdf".into(),
            size: 10,
            sha256: "ab".repeat(32),
            dropped: false,
        }],
        raw_key: Some("cd".repeat(32)),
        kind: None,
    });
    round_trip(&entry(Some(outgoing(vec![]))));
    round_trip(&entry(Some(outgoing(vec![OutgoingAttachment {
        name: "a.txt".into(),
        content_type: "text/plain".into(),
        bytes: b"\x00\x01 bytes".to_vec(),
    }]))));
    round_trip(&entry(None));
    round_trip(&Delivery {
        outbox_id: 1,
        ticket: None,
        message_id: "m@desk".into(),
        recipients: vec![addr("a@b.c")],
        delivered_at: at(0),
        queued_at: at(1),
        attempts: 1,
    });
    round_trip(&Checkpoint {
        uid_validity: 9,
        last_uid: 100,
    });
    round_trip(&Disposition {
        ticket: Some(7),
        at: at(0),
        outcome: "new ticket".into(),
    });
    round_trip(&IgnoredEntry {
        id: 1,
        mailbox: "help".into(),
        at: at(0),
        from: None,
        subject: "Out of office".into(),
        reason: "automatic".into(),
        raw_key: Some("ab".repeat(32)),
    });
    round_trip(&AddressState {
        hard_bounces: 2,
        undeliverable_since: None,
        last_bounce: Some(at(0)),
    });
    round_trip(&QuarantineEntry {
        id: 1,
        mailbox: "help".into(),
        reason: "cannot parse".into(),
        at: at(0),
        raw_key: "ab".repeat(32),
        size: 10,
    });
    round_trip(&vec![addr("a@b.c"), addr("d@e.f")]);
}

#[test]
fn every_event_kind_round_trips() {
    let kinds = vec![
        EventKind::Created {
            mailbox: "help".into(),
        },
        EventKind::StatusChanged {
            from: Status::New,
            to: Status::Open,
            reason: "reply".into(),
        },
        EventKind::MailDelivered {
            outbox_id: 1,
            message_id: "m".into(),
            attempts: 1,
        },
        EventKind::Routed {
            rules: vec!["vip".into()],
            team: Some("it".into()),
            priority: Priority::High,
            assignee: None,
            tags: vec![],
        },
        EventKind::DeliveryFailed {
            message_id: None,
            recipient: "a@b.c".into(),
            status: Some("5.1.1".into()),
            diagnostic: None,
            hard: true,
        },
        EventKind::Linked {
            kind: LinkKind::Related,
            ticket: 2,
        },
        EventKind::CommentAdded,
        EventKind::WaitingReminder,
        EventKind::SlaBreached {
            target: "first_response".into(),
            due: at(5),
        },
    ];
    for kind in kinds {
        round_trip(&Event {
            at: at(0),
            actor: "deskgate".into(),
            kind,
        });
    }
}

#[test]
fn the_json_of_an_older_release_decodes() {
    // A ticket as format-3 releases wrote it: JSON, the send window as a
    // list of times (older still), fields added since missing.
    let json = br#"{"id":5,"subject":"s","requester":{"name":null,"address":"a@b.c"},
        "status":"open","priority":"normal","team":null,"assignee":null,"mailbox":"help",
        "created_at":"2026-03-02T09:00:00Z","updated_at":"2026-03-02T09:00:00Z",
        "first_response_at":null,"resolved_at":null,"message_count":1,"event_count":1,
        "auto_sent":["2026-03-02T09:00:00Z"]}"#;
    let t: Ticket = decode_record(json).unwrap();
    assert_eq!((t.id, t.status, t.tags.len()), (5, Status::Open, 0));
    let ev: Event = decode_record(
        br#"{"at":"2026-03-02T09:00:00Z","actor":"deskgate","event":"created","mailbox":"help"}"#,
    )
    .unwrap();
    assert_eq!(
        ev.kind,
        EventKind::Created {
            mailbox: "help".into()
        }
    );
}

#[test]
fn the_json_shape_is_unchanged() {
    // The CLI's --json and exports print the records as JSON: the compact
    // store encoding must not have changed that shape.
    let ev = Event {
        at: at(0),
        actor: "deskgate".into(),
        kind: EventKind::CommentAdded,
    };
    let v = serde_json::to_value(&ev).unwrap();
    assert_eq!(v["event"], "comment_added");
    let v = serde_json::to_value(entry(None)).unwrap();
    assert!(v.get("composed").is_none());
}

#[test]
fn a_corrupt_record_is_an_error() {
    let mut packed = encode_record(&ticket()).unwrap();
    packed.truncate(packed.len() / 2);
    assert!(decode_record::<Ticket>(&packed).is_err());
    let mut packed = encode_record(&entry(Some(outgoing(vec![])))).unwrap();
    assert_eq!(packed[0], PACK_ZSTD);
    let n = packed.len();
    packed[n / 2] ^= 0xFF;
    packed.truncate(n - 3);
    assert!(decode_record::<OutboxEntry>(&packed).is_err());
    assert!(decode_record::<Ticket>(&[0x07, 1, 2]).is_err());
}
