//! Signed tracking tokens: what an open pixel, a click link, an unsubscribe link or a
//! bounce address names (one message, one action, one link), with an HMAC-SHA256 tag so
//! nobody can make one up or change the link it points to.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use uuid::Uuid;

/// What a token lets its bearer do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Open = 1,
    Click = 2,
    Unsubscribe = 3,
    Bounce = 4,
    /// A satisfaction rating: `message` holds the ticket's number, `link` the score.
    Rate = 5,
}

impl Action {
    fn from_byte(b: u8) -> Option<Action> {
        Some(match b {
            1 => Action::Open,
            2 => Action::Click,
            3 => Action::Unsubscribe,
            4 => Action::Bounce,
            5 => Action::Rate,
            _ => return None,
        })
    }
}

/// One message's token for one action (and, for a click, the link's index in the message).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Token {
    pub message: Uuid,
    pub action: Action,
    pub link: u16,
}

/// 96 bits of tag: far past guessing at any request rate, and the URLs stay short.
const TAG: usize = 12;
const BODY: usize = 16 + 1 + 2;

fn mac(secret: &[u8], body: &[u8]) -> Hmac<Sha256> {
    // HMAC takes keys of any length, so this cannot fail.
    let mut m = <Hmac<Sha256> as Mac>::new_from_slice(secret).unwrap_or_else(|_| unreachable!());
    m.update(body);
    m
}

impl Token {
    pub fn new(message: Uuid, action: Action, link: u16) -> Token {
        Token {
            message,
            action,
            link,
        }
    }

    fn body(&self) -> [u8; BODY] {
        let mut b = [0u8; BODY];
        b[..16].copy_from_slice(self.message.as_bytes());
        b[16] = self.action as u8;
        b[17..].copy_from_slice(&self.link.to_be_bytes());
        b
    }

    /// URL-safe text: the token's fields and their tag.
    pub fn sign(&self, secret: &[u8]) -> String {
        let body = self.body();
        let tag = mac(secret, &body).finalize().into_bytes();
        let mut all = [0u8; BODY + TAG];
        all[..BODY].copy_from_slice(&body);
        all[BODY..].copy_from_slice(&tag[..TAG]);
        URL_SAFE_NO_PAD.encode(all)
    }

    /// The token `text` names, if its tag is right (compared in constant time).
    pub fn verify(text: &str, secret: &[u8]) -> Option<Token> {
        if text.len() > 64 {
            return None;
        }
        let all = URL_SAFE_NO_PAD.decode(text).ok()?;
        if all.len() != BODY + TAG {
            return None;
        }
        let (body, tag) = all.split_at(BODY);
        mac(secret, body).verify_truncated_left(tag).ok()?;
        let message = Uuid::from_slice(&body[..16]).ok()?;
        let action = Action::from_byte(body[16])?;
        let link = u16::from_be_bytes([body[17], body[18]]);
        Some(Token {
            message,
            action,
            link,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn round_trip_and_tamper() {
        let t = Token::new(Uuid::from_u128(7), Action::Click, 3);
        let s = t.sign(b"k");
        assert_eq!(Token::verify(&s, b"k"), Some(t));
        assert_eq!(Token::verify(&s, b"other"), None);
        // Another link of the same message is another token.
        let other = Token::new(Uuid::from_u128(7), Action::Click, 4).sign(b"k");
        assert_ne!(s, other);
        let mut bytes = URL_SAFE_NO_PAD.decode(&s).unwrap();
        bytes[18] ^= 1;
        assert_eq!(Token::verify(&URL_SAFE_NO_PAD.encode(&bytes), b"k"), None);
        assert_eq!(Token::verify("", b"k"), None);
        assert_eq!(Token::verify(&"A".repeat(65), b"k"), None);
        // An unknown action with a valid tag is still refused.
        let mut body = t.body();
        body[16] = 9;
        let tag = mac(b"k", &body).finalize().into_bytes();
        let forged = [&body[..], &tag[..TAG]].concat();
        assert_eq!(Token::verify(&URL_SAFE_NO_PAD.encode(forged), b"k"), None);
        for a in [
            Action::Open,
            Action::Click,
            Action::Unsubscribe,
            Action::Bounce,
            Action::Rate,
        ] {
            let t = Token::new(Uuid::from_u128(1), a, 0);
            assert_eq!(Token::verify(&t.sign(b"s"), b"s"), Some(t));
        }
    }

    proptest! {
        #[test]
        fn any_text_is_refused_or_round_trips(s in "[A-Za-z0-9_-]{0,40}") {
            if let Some(t) = Token::verify(&s, b"secret") {
                prop_assert_eq!(t.sign(b"secret"), s);
            }
        }
    }
}
