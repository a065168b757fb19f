//! Queues: help addresses of their own (`[[queue]]`), besides `[desk]
//! address`, which is the default queue. A new ticket joins the queue whose
//! address the requester wrote to; every mail of the ticket then goes out
//! From that address (its display name, its templates), and replies to any of
//! our addresses thread by token and references, so a ticket stays on its
//! queue whichever address a later mail names.

use crate::desk::policy::Policy;
pub use crate::desk::queue_def::Queue;
use crate::desk::templates::Templates;
use crate::desk::trust::{self, PlusTag};
use crate::mail::address::{EmailAddress, Party};
use crate::mail::classify::Class;
use crate::mail::parse::InboundMail;
use crate::store::records::Ticket;

/// Who a mail goes out as: a queue, or the desk's own address.
#[derive(Debug, Clone, Copy)]
pub struct Sender<'a> {
    /// None for the default queue (`[desk] address`).
    pub queue: Option<&'a Queue>,
    pub party: &'a Party,
    pub envelope_from: &'a EmailAddress,
    pub templates: &'a Templates,
}

impl Sender<'_> {
    pub fn address(&self) -> &EmailAddress {
        &self.party.address
    }

    /// The display name, e.g. for "Alice via IT Support".
    pub fn display_name(&self) -> &str {
        self.party.name.as_deref().unwrap_or("the help desk")
    }

    pub fn queue_name(&self) -> Option<String> {
        self.queue.map(|q| q.name.clone())
    }
}

/// Whether `addr` is `base` or one of its plus-addresses (`help+…@`).
fn is_or_plus_of(base: &EmailAddress, addr: &EmailAddress) -> bool {
    addr.domain() == base.domain()
        && (addr.local_part() == base.local_part()
            || addr
                .local_part()
                .strip_prefix(base.local_part())
                .is_some_and(|rest| rest.starts_with('+')))
}

impl Policy {
    /// The sender of the default queue: the desk's own address.
    pub fn desk_sender(&self) -> Sender<'_> {
        Sender {
            queue: None,
            party: &self.desk,
            envelope_from: &self.envelope_from,
            templates: &self.templates,
        }
    }

    /// The sender of the queue named `name`; the desk's when it is None or
    /// names no queue (any more: a queue removed from the config hands its
    /// tickets to the desk's address).
    pub fn sender(&self, name: Option<&str>) -> Sender<'_> {
        match name.and_then(|n| self.queues.iter().find(|q| q.name == n)) {
            Some(q) => Sender {
                queue: Some(q),
                party: &q.party,
                envelope_from: &q.envelope_from,
                templates: q.templates.as_ref().unwrap_or(&self.templates),
            },
            None => self.desk_sender(),
        }
    }

    /// The sender of an answer to `mail` outside any ticket (a rejection, the
    /// commands list): the queue it was written to.
    pub fn sender_for_mail(&self, mail: &InboundMail, mailbox: Option<&str>) -> Sender<'_> {
        self.sender(self.queue_for_mail(mail, mailbox).map(|q| q.name.as_str()))
    }

    /// The sender of a ticket's mail: its queue's.
    pub fn sender_of(&self, t: &Ticket) -> Sender<'_> {
        self.sender(t.queue.as_deref())
    }

    /// Our help addresses: the desk's first, then every queue's.
    pub fn own_addresses(&self) -> impl Iterator<Item = &EmailAddress> {
        std::iter::once(&self.desk.address).chain(self.queues.iter().map(|q| &q.party.address))
    }

    /// Whether mail to `addr` would come to us: one of our help addresses or
    /// a plus-address of one (a reply tag, `help+comment@`).
    pub fn is_own_address(&self, addr: &EmailAddress) -> bool {
        self.own_addresses().any(|a| is_or_plus_of(a, addr))
    }

    /// What a plus-address of any of our help addresses says. A signed tag
    /// proves the same on each of them: its HMAC covers the ticket and the
    /// agent, which is all it claims (that the agent was sent the ticket's
    /// notification); the address part only routes the mail to us.
    pub fn plus_tag(&self, addr: &EmailAddress) -> Option<PlusTag> {
        self.own_addresses().find_map(|a| trust::plus_tag(a, addr))
    }

    /// The queue a new ticket from `mail` (fetched from `mailbox`) joins:
    /// a queue's address in Delivered-To (the copy in that queue's mailbox);
    /// else the first of our addresses in To, then Cc (the desk's own is the
    /// default queue); else the default queue when Delivered-To is the
    /// desk's address (a Bcc); else the first queue the mailbox receives;
    /// else the default queue. Delivered-To names the mailbox an alias was
    /// rewritten to, not the address written to, hence queues first there.
    pub fn queue_for_mail(&self, mail: &InboundMail, mailbox: Option<&str>) -> Option<&Queue> {
        let queue_of = |r: &EmailAddress| {
            self.queues
                .iter()
                .find(|q| is_or_plus_of(&q.party.address, r))
        };
        if let Some(q) = mail.delivered_to.iter().find_map(queue_of) {
            return Some(q);
        }
        let written = mail.to.iter().chain(&mail.cc).map(|p| &p.address);
        for r in written {
            if is_or_plus_of(&self.desk.address, r) {
                return None;
            }
            if let Some(q) = queue_of(r) {
                return Some(q);
            }
        }
        if mail
            .delivered_to
            .iter()
            .any(|r| is_or_plus_of(&self.desk.address, r))
        {
            return None;
        }
        let mailbox = mailbox?;
        self.queues.iter().find(|q| q.mailbox == mailbox)
    }

    /// Our own mail come back, by a queue's address (the desk's own is
    /// `mail::classify`'s job): X-Loop naming it, or From it.
    pub fn queue_loop(&self, mail: &InboundMail) -> Option<Class> {
        self.queues.iter().find_map(|q| {
            let a = &q.party.address;
            if mail.auto.x_loop.iter().any(|v| v.contains(a.as_str())) {
                Some(Class::OwnLoop(format!("X-Loop names {a}")))
            } else if mail.from.as_ref().map(|p| &p.address) == Some(a) {
                Some(Class::OwnLoop(format!("sent from {a} itself")))
            } else {
                None
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mail::parse::parse;

    fn a(s: &str) -> EmailAddress {
        EmailAddress::parse(s).unwrap()
    }

    fn queue(name: &str, address: &str, mailbox: &str) -> Queue {
        Queue {
            name: name.into(),
            party: Party {
                name: Some(format!("{name} desk")),
                address: a(address),
            },
            envelope_from: a(address),
            mailbox: mailbox.into(),
            default_team: None,
            default_sla: None,
            templates: None,
        }
    }

    /// help@ (the desk), it@ and hr@, both received by the mailbox "shared".
    fn policy() -> Policy {
        let mut p = Policy::for_tests(Some("Help"));
        p.queues = vec![
            queue("it", "it@desk.test", "shared"),
            queue("hr", "hr@desk.test", "shared"),
        ];
        p
    }

    fn mail(headers: &str) -> InboundMail {
        parse(format!("From: c@customer.test\r\n{headers}Subject: s\r\n\r\nhi\r\n").as_bytes())
            .unwrap()
    }

    fn chosen(p: &Policy, headers: &str, mailbox: Option<&str>) -> Option<String> {
        p.queue_for_mail(&mail(headers), mailbox)
            .map(|q| q.name.clone())
    }

    #[test]
    fn a_new_ticket_joins_the_queue_the_requester_wrote_to() {
        let p = policy();
        assert_eq!(
            chosen(&p, "To: hr@desk.test\r\n", None).as_deref(),
            Some("hr")
        );
        assert_eq!(
            chosen(
                &p,
                "To: Someone <x@customer.test>\r\nCc: IT <IT@desk.test>\r\n",
                None
            )
            .as_deref(),
            Some("it"),
            "Cc counts, case does not"
        );
        assert_eq!(
            chosen(
                &p,
                "Delivered-To: hr@desk.test\r\nTo: it@desk.test\r\n",
                None
            )
            .as_deref(),
            Some("hr"),
            "the envelope recipient first: the copy in hr's mailbox is hr's"
        );
        assert_eq!(
            chosen(&p, "To: help@desk.test, hr@desk.test\r\n", Some("shared")),
            None,
            "the desk's own address is the default queue"
        );
        assert_eq!(
            chosen(&p, "To: hr+urgent@desk.test\r\n", None).as_deref(),
            Some("hr"),
            "a plus-address of a queue"
        );
        assert_eq!(
            chosen(&p, "To: hrx@desk.test\r\n", None),
            None,
            "a longer local part is not a plus-address"
        );
    }

    #[test]
    fn through_an_alias_the_address_written_to_counts_not_the_mailbox() {
        let p = policy();
        // hr@ is an alias of the desk's mailbox: Delivered-To is help@.
        assert_eq!(
            chosen(
                &p,
                "Delivered-To: help@desk.test\r\nTo: hr@desk.test\r\n",
                Some("shared")
            )
            .as_deref(),
            Some("hr")
        );
        // A Bcc to the desk's own address: the default queue.
        let bcc = "Delivered-To: help@desk.test\r\nTo: list@customer.test\r\n";
        assert_eq!(chosen(&p, bcc, Some("shared")), None);
    }

    #[test]
    fn mail_naming_no_address_of_ours_joins_its_mailboxs_first_queue() {
        let p = policy();
        // Bcc: none of our addresses in the headers.
        let bcc = "To: list@customer.test\r\n";
        assert_eq!(chosen(&p, bcc, Some("shared")).as_deref(), Some("it"));
        assert_eq!(chosen(&p, bcc, Some("other")), None, "else the desk's");
        assert_eq!(chosen(&p, bcc, None), None);
    }

    #[test]
    fn senders_are_the_queues_and_fall_back_to_the_desk() {
        let p = policy();
        let mut t = Ticket::new(1, "s".into(), p.desk.clone(), "shared", chrono::Utc::now());
        assert_eq!(p.sender_of(&t).address().as_str(), "help@desk.test");
        t.queue = Some("hr".into());
        let s = p.sender_of(&t);
        assert_eq!(s.address().as_str(), "hr@desk.test");
        assert_eq!(s.display_name(), "hr desk");
        assert_eq!(s.queue_name().as_deref(), Some("hr"));
        t.queue = Some("removed".into());
        assert_eq!(
            p.sender_of(&t).address().as_str(),
            "help@desk.test",
            "a queue gone from the config hands its tickets to the desk"
        );
    }

    #[test]
    fn every_queue_address_is_ours_for_the_loop_guards() {
        let p = policy();
        for own in [
            "help@desk.test",
            "it@desk.test",
            "hr@desk.test",
            "hr+1000.1.abc@desk.test",
            "it+comment@desk.test",
        ] {
            assert!(p.is_own_address(&a(own)), "{own}");
        }
        for other in ["hr@other.test", "hrx@desk.test", "alice@desk.test"] {
            assert!(!p.is_own_address(&a(other)), "{other}");
        }
        let looped = mail("To: it@desk.test\r\nX-Loop: hr@desk.test\r\n");
        assert!(matches!(p.queue_loop(&looped), Some(Class::OwnLoop(_))));
        let from_hr =
            parse(b"From: hr@desk.test\r\nTo: it@desk.test\r\nSubject: s\r\n\r\nx\r\n").unwrap();
        assert!(matches!(p.queue_loop(&from_hr), Some(Class::OwnLoop(_))));
        assert_eq!(p.queue_loop(&mail("To: it@desk.test\r\n")), None);
    }

    /// A tag made for one queue's address proves the same on another's:
    /// the HMAC binds ticket and agent, not the address, so moving it to
    /// hr+… tells nobody anything they did not know (and a guessed or
    /// another agent's tag fails on every address alike).
    #[test]
    fn a_signed_tag_proves_the_same_on_every_queue_address_and_nothing_more() {
        let mut p = policy();
        let key = crate::store::ReplyKey {
            epoch: 1,
            key: b"k".to_vec(),
            valid_until: None,
        };
        p.reply_keys = crate::store::KeyRing::new(vec![key.clone()]);
        let alice = a("alice@desk.test");
        let on_it = trust::reply_address(&a("it@desk.test"), &key, 1000, &alice).unwrap();
        let moved = a(&on_it.as_str().replacen("it+", "hr+", 1));
        let foreign = a(&on_it.as_str().replacen("@desk.test", "@evil.test", 1));
        let now = chrono::Utc::now();
        let check = |addr: &EmailAddress, who: &EmailAddress, ticket| match p.plus_tag(addr) {
            Some(PlusTag::Ticket { ticket: t, sig }) if t == ticket => {
                Some(trust::check_tag(&p.reply_keys.get(), now, t, who, &sig))
            }
            _ => None,
        };
        assert_eq!(check(&on_it, &alice, 1000), Some(trust::TagCheck::Valid));
        assert_eq!(check(&moved, &alice, 1000), Some(trust::TagCheck::Valid));
        assert_eq!(
            check(&moved, &a("mallory@desk.test"), 1000),
            Some(trust::TagCheck::Wrong),
            "still bound to the agent"
        );
        assert_eq!(
            check(&foreign, &alice, 1000),
            None,
            "not one of our addresses"
        );
    }
}
