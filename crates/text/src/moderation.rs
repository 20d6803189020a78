//! Posts held for a moderator: spam (many links, shouting runs, sales phrases with a
//! link) and toxic writing (an insult said with clearly negative sentiment). A screen,
//! not a judge: what it holds waits for a person, who publishes or hides it.

/// Words that insult a person; alone they are not enough (VADER must also find the
/// text clearly negative), so "this stupid bug" in a calm report stays up.
const INSULTS: &[&str] = &[
    "idiot",
    "idiots",
    "moron",
    "morons",
    "stupid",
    "dumb",
    "loser",
    "losers",
    "scum",
    "trash",
    "pathetic",
    "imbecile",
    "retard",
    "shut up",
    "hate you",
    "kill yourself",
    "go die",
    "screw you",
    "f*** you",
    "fuck you",
    "fuck off",
    "asshole",
    "bastard",
];

/// Phrases of unsolicited selling; they flag a post only when it also carries a link.
const SALES: &[&str] = &[
    "buy now",
    "free money",
    "click here",
    "limited offer",
    "act now",
    "casino",
    "viagra",
    "work from home",
    "earn $",
    "make money",
    "crypto giveaway",
    "double your",
    "cheap followers",
    "guaranteed income",
    "promo code",
];

fn links(t: &str) -> usize {
    t.matches("http://").count() + t.matches("https://").count() + t.matches("www.").count()
}

fn longest_run(t: &str) -> usize {
    let (mut best, mut run, mut last) = (0, 0, None);
    for c in t.chars() {
        if Some(c) == last && !c.is_whitespace() {
            run += 1;
        } else {
            run = 1;
            last = Some(c);
        }
        best = usize::max(best, run);
    }
    best
}

/// Why a post should wait for review (`spam` or `toxic`), given its text and its VADER
/// compound score; `None` when it can go up.
pub fn screen(text: &str, compound: f64) -> Option<&'static str> {
    let lower = text.to_lowercase();
    let n = links(&lower);
    if n >= 4 || longest_run(text) >= 20 || (n >= 1 && SALES.iter().any(|s| lower.contains(s))) {
        return Some("spam");
    }
    let words: Vec<&str> = lower
        .split(|c: char| !(c.is_alphanumeric() || c == '*' || c == '\''))
        .filter(|w| !w.is_empty())
        .collect();
    let joined = format!(" {} ", words.join(" "));
    let insult = INSULTS.iter().any(|i| joined.contains(&format!(" {i} ")));
    if insult && compound <= -0.4 {
        return Some("toxic");
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Vader;

    fn check(t: &str) -> Option<&'static str> {
        screen(t, Vader::new().polarity(t).compound)
    }

    #[test]
    fn ordinary_posts_go_up() {
        assert_eq!(check("How do I change the card on my subscription?"), None);
        assert_eq!(
            check("Go to Settings, then Billing: https://shop.example/billing"),
            None
        );
        assert_eq!(
            check("This stupid bug ate my cart but the fix below works, thanks!"),
            None
        );
        assert_eq!(check("Soooo good"), None);
    }

    #[test]
    fn spam_waits() {
        assert_eq!(
            check("a http://x.example b https://y.example c www.z.example d https://w.example"),
            Some("spam")
        );
        assert_eq!(
            check("Click here for free money https://scam.example"),
            Some("spam")
        );
        assert_eq!(check("Click here to read the manual"), None);
        assert_eq!(check(&format!("HELP{}", "!".repeat(25))), Some("spam"));
        assert_eq!(check(&format!("wait{}", "!".repeat(18))), None);
        assert_eq!(links("http:// https:// www."), 3);
        assert_eq!(longest_run("abbbc  d"), 3);
        assert_eq!(longest_run("a          b"), 1);
    }

    #[test]
    fn insults_said_angrily_wait() {
        assert_eq!(
            check("You are an idiot and your answer is useless garbage."),
            Some("toxic")
        );
        assert_eq!(check("Shut up, nobody asked you, loser."), Some("toxic"));
        assert_eq!(screen("you idiot", -0.39), None);
        assert_eq!(screen("you idiot", -0.4), Some("toxic"));
        assert_eq!(screen("idiotic design", -0.9), None);
        // Masked swearing is still a word of its own.
        assert_eq!(screen("well f*** you then", -0.5), Some("toxic"));
    }
}
