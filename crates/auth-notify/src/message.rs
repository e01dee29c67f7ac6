//! Builds the MIME message both mailers send: multipart/alternative (text, then HTML).

use auth_core::mail::{DeliveryError, EmailMessage};
use lettre::Message;
use lettre::message::{Mailbox, MultiPart};
use uuid::Uuid;

/// Parses the configured sender (`"Name <addr>"` or `addr`); the error names `mail.from`.
pub(crate) fn parse_from(from: &str) -> Result<Mailbox, String> {
    from.trim().parse::<Mailbox>().map_err(|e| {
        format!(
            "mail.from: {from:?} is not a valid sender ({e}); \
             expected \"Name <address@example.com>\" or \"address@example.com\""
        )
    })
}

/// Replaces CR, LF and other control characters with spaces: a header value is one line.
pub(crate) fn one_line(value: &str) -> String {
    value
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

/// The RFC 5322 message for `message`, from `from`, with Date and Message-ID.
///
/// An unparseable recipient is [`DeliveryError::Permanent`]. Errors never carry the body.
pub(crate) fn build(from: &Mailbox, message: &EmailMessage) -> Result<Message, DeliveryError> {
    let to = message
        .to
        .trim()
        .parse::<Mailbox>()
        .map_err(|e| DeliveryError::Permanent(format!("invalid recipient address: {e}")))?;
    let message_id = format!("<{}@{}>", Uuid::new_v4().simple(), from.email.domain());
    Message::builder()
        .from(from.clone())
        .to(to)
        .subject(one_line(&message.subject))
        .date_now()
        .message_id(Some(message_id))
        .multipart(MultiPart::alternative_plain_html(
            message.text.clone(),
            message.html.clone(),
        ))
        .map_err(|e| DeliveryError::Permanent(format!("cannot build the message: {e}")))
}
