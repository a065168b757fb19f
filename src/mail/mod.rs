//! Mail as bytes and values: parsing and sanitising incoming mail, its text
//! (HTML to text, quoted history, inline `cid:` images), what kind of sender
//! it came from (RFC 3834), delivery reports, Authentication-Results (RFC 8601), addresses, and
//! building outgoing RFC 5322 bytes.
//!
//! Pure: no store, no tokio, no config, no clock. May import nothing of
//! deskgate's outside `mail/`; everything else may import it.

pub mod address;
pub mod auth_results;
pub mod bounce;
pub mod classify;
pub mod flowed;
pub mod inline;
pub mod outgoing;
pub mod parse;
pub mod text;
