//! Sentiment: a faithful port of VADER (Hutto & Gilbert, ICWSM 2014; vaderSentiment
//! 3.3.2), rules and lexicons, so scores match the reference implementation (checked on
//! every labelled text in `../shared/data/sentiment`). Brands may add or override
//! lexicon terms. The port keeps VADER's quirks where they change scores (the `but`
//! rule's first-equal-value lookup, the "so"/"this" emphasis precedence), because
//! matching the validated method beats silently "fixing" it; docs/text.md lists them.

use rustc_hash::FxHashMap;
use serde::Serialize;
use std::borrow::Cow;

const B_INCR: f64 = 0.293;
const B_DECR: f64 = -0.293;
const C_INCR: f64 = 0.733;
const N_SCALAR: f64 = -0.74;

const LEXICON: &str = include_str!("../data/vader_lexicon.txt");
const EMOJI_LEXICON: &str = include_str!("../data/emoji_utf8_lexicon.txt");

const NEGATE: [&str; 59] = [
    "aint",
    "arent",
    "cannot",
    "cant",
    "couldnt",
    "darent",
    "didnt",
    "doesnt",
    "ain't",
    "aren't",
    "can't",
    "couldn't",
    "daren't",
    "didn't",
    "doesn't",
    "dont",
    "hadnt",
    "hasnt",
    "havent",
    "isnt",
    "mightnt",
    "mustnt",
    "neither",
    "don't",
    "hadn't",
    "hasn't",
    "haven't",
    "isn't",
    "mightn't",
    "mustn't",
    "neednt",
    "needn't",
    "never",
    "none",
    "nope",
    "nor",
    "not",
    "nothing",
    "nowhere",
    "oughtnt",
    "shant",
    "shouldnt",
    "uhuh",
    "wasnt",
    "werent",
    "oughtn't",
    "shan't",
    "shouldn't",
    "uh-uh",
    "wasn't",
    "weren't",
    "without",
    "wont",
    "wouldnt",
    "won't",
    "wouldn't",
    "rarely",
    "seldom",
    "despite",
];

/// Booster lookups happen for nearly every token: a hash map beats the long `match`.
fn booster(w: &str) -> Option<f64> {
    static M: std::sync::OnceLock<FxHashMap<&'static str, f64>> = std::sync::OnceLock::new();
    let m = M.get_or_init(|| {
        BOOSTER_WORDS
            .iter()
            .filter_map(|w| booster_match(w).map(|v| (*w, v)))
            .collect()
    });
    // No booster is longer than 13 bytes; skip hashing long words.
    if w.len() > 13 {
        return None;
    }
    m.get(w).copied()
}

const BOOSTER_WORDS: [&str; 87] = [
    "absolutely",
    "amazingly",
    "awfully",
    "completely",
    "considerable",
    "considerably",
    "decidedly",
    "deeply",
    "effing",
    "enormous",
    "enormously",
    "entirely",
    "especially",
    "exceptional",
    "exceptionally",
    "extreme",
    "extremely",
    "fabulously",
    "flipping",
    "flippin",
    "frackin",
    "fracking",
    "fricking",
    "frickin",
    "frigging",
    "friggin",
    "fully",
    "fuckin",
    "fucking",
    "fuggin",
    "fugging",
    "greatly",
    "hella",
    "highly",
    "hugely",
    "incredible",
    "incredibly",
    "intensely",
    "major",
    "majorly",
    "more",
    "most",
    "particularly",
    "purely",
    "quite",
    "really",
    "remarkably",
    "so",
    "substantially",
    "thoroughly",
    "total",
    "totally",
    "tremendous",
    "tremendously",
    "uber",
    "unbelievably",
    "unusually",
    "utter",
    "utterly",
    "very",
    "almost",
    "barely",
    "hardly",
    "just enough",
    "kind of",
    "kinda",
    "kindof",
    "kind-of",
    "less",
    "little",
    "marginal",
    "marginally",
    "occasional",
    "occasionally",
    "partly",
    "scarce",
    "scarcely",
    "slight",
    "slightly",
    "somewhat",
    "sort of",
    "sorta",
    "sortof",
    "sort-of",
    "absolutely",
    "very",
    "so",
];

fn booster_match(w: &str) -> Option<f64> {
    Some(match w {
        "absolutely" | "amazingly" | "awfully" | "completely" | "considerable" | "considerably"
        | "decidedly" | "deeply" | "effing" | "enormous" | "enormously" | "entirely"
        | "especially" | "exceptional" | "exceptionally" | "extreme" | "extremely"
        | "fabulously" | "flipping" | "flippin" | "frackin" | "fracking" | "fricking"
        | "frickin" | "frigging" | "friggin" | "fully" | "fuckin" | "fucking" | "fuggin"
        | "fugging" | "greatly" | "hella" | "highly" | "hugely" | "incredible" | "incredibly"
        | "intensely" | "major" | "majorly" | "more" | "most" | "particularly" | "purely"
        | "quite" | "really" | "remarkably" | "so" | "substantially" | "thoroughly" | "total"
        | "totally" | "tremendous" | "tremendously" | "uber" | "unbelievably" | "unusually"
        | "utter" | "utterly" | "very" => B_INCR,
        "almost" | "barely" | "hardly" | "just enough" | "kind of" | "kinda" | "kindof"
        | "kind-of" | "less" | "little" | "marginal" | "marginally" | "occasional"
        | "occasionally" | "partly" | "scarce" | "scarcely" | "slight" | "slightly"
        | "somewhat" | "sort of" | "sorta" | "sortof" | "sort-of" => B_DECR,
        _ => return None,
    })
}

/// VADER's four scores: proportions of negative, neutral and positive text, and the
/// normalised compound in [-1, 1].
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Scores {
    pub neg: f64,
    pub neu: f64,
    pub pos: f64,
    pub compound: f64,
}

/// `positive` at compound ≥ 0.05, `negative` at ≤ −0.05, else `neutral` (VADER's
/// recommended thresholds).
pub fn label(compound: f64) -> &'static str {
    if compound >= 0.05 {
        "positive"
    } else if compound <= -0.05 {
        "negative"
    } else {
        "neutral"
    }
}

pub struct Vader {
    lexicon: FxHashMap<String, f64>,
    /// Lexicon valence, booster value and negation flag per word.
    words: WordTable,
    emojis: FxHashMap<char, String>,
}

fn word_table(lexicon: &FxHashMap<String, f64>) -> WordTable {
    let mut words: FxHashMap<String, Info> = lexicon
        .iter()
        .map(|(w, v)| {
            (
                w.clone(),
                Info {
                    valence: *v,
                    ..Default::default()
                },
            )
        })
        .collect();
    for b in BOOSTER_WORDS {
        words.entry(b.to_string()).or_default().boost = match booster(b) {
            Some(v) if v > 0.0 => 1,
            Some(_) => -1,
            None => 0,
        };
    }
    for n in NEGATE {
        words.entry(n.to_string()).or_default().negate = true;
    }
    for (w, tag) in TAGS {
        words.entry(w.to_string()).or_default().tag = tag;
    }
    let mut table = WordTable::default();
    for (w, info) in words {
        let packed = Packed {
            valence: match info.valence() {
                Some(v) => {
                    table.valences.push(v);
                    (table.valences.len() - 1) as u32
                }
                None => u32::MAX,
            },
            boost: info.boost,
            negate: info.negate,
            tag: info.tag,
        };
        match short_key(w.as_bytes()) {
            Some(k) => table.short.insert(k, packed),
            None => table.long.insert(w, packed),
        };
    }
    table
}

/// The words VADER's rules look for by name. Rules compare tags, so no token needs to
/// be kept as a string once it has been looked up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
enum Tag {
    #[default]
    Other,
    No,
    Or,
    Nor,
    Never,
    So,
    This,
    Without,
    Doubt,
    Least,
    At,
    Very,
    But,
    Kind,
    Sort,
    Of,
    Just,
    Enough,
    The,
    Shit,
    Bomb,
    To,
    Die,
    For,
    Bad,
    Ass,
    Bus,
    Stop,
    Yeah,
    Right,
    Kiss,
    Death,
    Beating,
    Heart,
}

const TAGS: [(&str, Tag); 33] = [
    ("no", Tag::No),
    ("or", Tag::Or),
    ("nor", Tag::Nor),
    ("never", Tag::Never),
    ("so", Tag::So),
    ("this", Tag::This),
    ("without", Tag::Without),
    ("doubt", Tag::Doubt),
    ("least", Tag::Least),
    ("at", Tag::At),
    ("very", Tag::Very),
    ("but", Tag::But),
    ("kind", Tag::Kind),
    ("sort", Tag::Sort),
    ("of", Tag::Of),
    ("just", Tag::Just),
    ("enough", Tag::Enough),
    ("the", Tag::The),
    ("shit", Tag::Shit),
    ("bomb", Tag::Bomb),
    ("to", Tag::To),
    ("die", Tag::Die),
    ("for", Tag::For),
    ("bad", Tag::Bad),
    ("ass", Tag::Ass),
    ("bus", Tag::Bus),
    ("stop", Tag::Stop),
    ("yeah", Tag::Yeah),
    ("right", Tag::Right),
    ("kiss", Tag::Kiss),
    ("death", Tag::Death),
    ("beating", Tag::Beating),
    ("heart", Tag::Heart),
];

/// `Info` as stored in the table: 8 bytes, valence by index, so the table takes a
/// fraction of the cache it would otherwise.
#[derive(Clone, Copy)]
struct Packed {
    valence: u32,
    boost: i8,
    negate: bool,
    tag: Tag,
}

/// Words of up to 15 bytes packed with their length into two machine words, so a lookup
/// hashes and compares integers instead of chasing a heap-allocated key; longer words go
/// to an ordinary map.
#[derive(Default)]
struct WordTable {
    short: FxHashMap<(u64, u64), Packed>,
    long: FxHashMap<String, Packed>,
    valences: Vec<f64>,
}

/// The packed key of a word of up to 15 bytes, lower-cased on the way when `lower` (ASCII
/// letters only — callers pass ASCII words then).
fn packed_key(b: &[u8], lower: bool) -> Option<(u64, u64)> {
    let n = b.len();
    // Whole-word loads (overlapping where the word is short) rather than byte copies
    // into a buffer, which would stall on store forwarding.
    let le64 = |i: usize| u64::from_le_bytes(b[i..i + 8].try_into().unwrap_or([0; 8]));
    let le32 = |i: usize| u32::from_le_bytes(b[i..i + 4].try_into().unwrap_or([0; 4])) as u64;
    let (mut lo, mut hi) = match n {
        0..=3 => (b.iter().rev().fold(0u64, |k, &c| k << 8 | c as u64), 0),
        4..=7 => (le32(0) | le32(n - 4) << ((n - 4) * 8), 0),
        8 => (le64(0), 0),
        9..=15 => (le64(0), le64(n - 8) >> ((16 - n) * 8)),
        _ => return None,
    };
    if lower {
        lo = ascii_lower(lo);
        hi = ascii_lower(hi);
    }
    Some((lo, hi | (n as u64) << 56))
}

fn short_key(b: &[u8]) -> Option<(u64, u64)> {
    packed_key(b, false)
}

/// Lower-cases the ASCII capitals in eight bytes at once (bytes must be ASCII).
fn ascii_lower(x: u64) -> u64 {
    const ONES: u64 = 0x0101_0101_0101_0101;
    // A byte gets its high bit set by the first sum when ≥ 'A', by the second when > 'Z'.
    let ge_a = x + ONES * (0x80 - b'A' as u64);
    let gt_z = x + ONES * (0x80 - b'Z' as u64 - 1);
    let upper = (ge_a ^ gt_z) & (ONES * 0x80);
    x | (upper >> 2)
}

impl WordTable {
    fn lookup(&self, key: Option<(u64, u64)>, word: &str) -> Info {
        let p = match key {
            Some(k) => self.short.get(&k),
            None => self.long.get(word),
        };
        match p {
            Some(p) => Info {
                valence: self
                    .valences
                    .get(p.valence as usize)
                    .copied()
                    .unwrap_or(f64::NAN),
                boost: p.boost,
                negate: p.negate,
                tag: p.tag,
            },
            None => Info::default(),
        }
    }
}

impl Default for Vader {
    fn default() -> Self {
        Self::new()
    }
}

/// Byte classes for the ASCII tokeniser: one table load per byte.
const WS: u8 = 1;
const UP: u8 = 2;
const LOW: u8 = 4;
const MARK: u8 = 8;
const PUNCT: u8 = 16;

const CLASS: [u8; 256] = {
    let mut t = [0u8; 256];
    let mut c = 0;
    while c < 128 {
        let b = c as u8;
        // Python's `str.split()` whitespace within ASCII, including \x1c–\x1f.
        if matches!(b, b' ' | b'\t'..=b'\r' | 0x1c..=0x1f) {
            t[c] = WS;
        } else if b.is_ascii_uppercase() {
            t[c] = UP;
        } else if b.is_ascii_lowercase() {
            t[c] = LOW;
        } else if b.is_ascii_punctuation() {
            t[c] = PUNCT
                | if matches!(b, b'!' | b'?' | b'\'') {
                    MARK
                } else {
                    0
                };
        }
        c += 1;
    }
    t
};

#[inline]
/// `str.strip(string.punctuation)`: ASCII punctuation is one byte, never inside a
/// multi-byte character, so trimming bytes keeps the slice on character boundaries.
fn trim_ascii_punct(t: &str) -> &str {
    let b = t.as_bytes();
    let mut s = 0;
    let mut e = b.len();
    while s < e && CLASS[b[s] as usize] & PUNCT != 0 {
        s += 1;
    }
    while e > s && CLASS[b[e - 1] as usize] & PUNCT != 0 {
        e -= 1;
    }
    &t[s..e]
}

/// Python's `str.isupper()`: some cased character and no lower-case one.
fn is_upper(s: &str) -> bool {
    let mut cased = false;
    for c in s.chars() {
        if c.is_lowercase() {
            return false;
        }
        if c.is_uppercase() {
            cased = true;
        }
    }
    cased
}

/// `"n't" in word.lower()`.
fn has_nt(w: &[u8]) -> bool {
    w.windows(3)
        .any(|x| x[0] | 0x20 == b'n' && x[1] == b'\'' && x[2] | 0x20 == b't')
}

impl Vader {
    pub fn new() -> Self {
        let mut lexicon = FxHashMap::default();
        for line in LEXICON.trim_end_matches('\n').split('\n') {
            let mut parts = line.trim().split('\t');
            if let (Some(w), Some(v)) = (parts.next(), parts.next()) {
                if let Ok(v) = v.parse::<f64>() {
                    lexicon.insert(w.to_string(), v);
                }
            }
        }
        let mut emojis = FxHashMap::default();
        for line in EMOJI_LEXICON.trim_end_matches('\n').split('\n') {
            let mut parts = line.trim().split('\t');
            if let (Some(e), Some(d)) = (parts.next(), parts.next()) {
                let mut cs = e.chars();
                // VADER looks emojis up one code point at a time.
                if let (Some(c), None) = (cs.next(), cs.next()) {
                    emojis.insert(c, d.to_string());
                }
            }
        }
        let words = word_table(&lexicon);
        Vader {
            lexicon,
            words,
            emojis,
        }
    }

    /// Adds or overrides lexicon terms (lower-case words, valence about −4..4).
    pub fn with_terms<'a>(mut self, terms: impl IntoIterator<Item = (&'a str, f64)>) -> Self {
        for (w, v) in terms {
            self.lexicon.insert(w.to_lowercase(), v);
        }
        self.words = word_table(&self.lexicon);
        self
    }

    pub fn valence(&self, word: &str) -> Option<f64> {
        self.lexicon.get(word).copied()
    }

    pub fn polarity(&self, text: &str) -> Scores {
        let text: Cow<'_, str> =
            if !text.is_ascii() && text.chars().any(|c| self.emojis.contains_key(&c)) {
                let mut out = String::with_capacity(text.len() + 32);
                let mut prev_space = true;
                for c in text.chars() {
                    match self.emojis.get(&c) {
                        Some(d) => {
                            if !prev_space {
                                out.push(' ');
                            }
                            out.push_str(d);
                            prev_space = false;
                        }
                        None => {
                            out.push(c);
                            prev_space = c == ' ';
                        }
                    }
                }
                Cow::Owned(out)
            } else {
                Cow::Borrowed(text)
            };
        let text = text.trim();
        SCRATCH.with(|cell| {
            let mut guard = cell.borrow_mut();
            let sc = &mut *guard;
            sc.upper.clear();
            sc.sentiments.clear();
            sc.info.clear();
            let (ep, qm) = if text.is_ascii() {
                self.tokens_ascii(text, sc)
            } else {
                self.tokens_unicode(text, sc)
            };
            let caps = sc.upper.iter().filter(|u| **u).count();
            let cap_diff = caps > 0 && caps < sc.upper.len();
            let info = &sc.info;
            for i in 0..info.len() {
                let v = if info[i].boost != 0
                    || (i + 1 < info.len()
                        && info[i].tag == Tag::Kind
                        && info[i + 1].tag == Tag::Of)
                {
                    0.0
                } else {
                    sentiment_valence(&sc.upper, info, cap_diff, i)
                };
                sc.sentiments.push(v);
            }
            but_check(info, &mut sc.sentiments);
            score_valence(&sc.sentiments, ep, qm)
        })
    }

    /// The common case, byte by byte: one scan per token finds its end, its case, an
    /// apostrophe and the text's `!`/`?` count (punctuation is neither upper nor lower
    /// case, so the untrimmed token's case flags are the trimmed one's); the lookup key is
    /// built and lower-cased in registers.
    fn tokens_ascii(&self, text: &str, sc: &mut Scratch) -> (usize, usize) {
        let b = text.as_bytes();
        let (mut ep, mut qm) = (0usize, 0usize);
        let mut i = 0;
        while i < b.len() {
            while i < b.len() && CLASS[b[i] as usize] & WS != 0 {
                i += 1;
            }
            if i == b.len() {
                break;
            }
            let s = i;
            let (mut seen, mut apos) = (0u8, false);
            while i < b.len() {
                let c = CLASS[b[i] as usize];
                if c & WS != 0 {
                    break;
                }
                seen |= c;
                if c & MARK != 0 {
                    match b[i] {
                        b'!' => ep += 1,
                        b'?' => qm += 1,
                        _ => apos = true,
                    }
                }
                i += 1;
            }
            let t = &text[s..i];
            let stripped = trim_ascii_punct(t);
            let tok = if stripped.len() <= 2 { t } else { stripped };
            let up = seen & UP != 0;
            let mut info = match packed_key(tok.as_bytes(), up) {
                Some(k) => self.words.lookup(Some(k), ""),
                None => self.words.lookup(None, &tok.to_ascii_lowercase()),
            };
            info.negate |= apos && has_nt(tok.as_bytes());
            sc.info.push(info);
            sc.upper.push(up && seen & LOW == 0);
        }
        (ep, qm)
    }

    fn tokens_unicode(&self, text: &str, sc: &mut Scratch) -> (usize, usize) {
        let (mut ep, mut qm) = (0usize, 0usize);
        for c in text.bytes() {
            match c {
                b'!' => ep += 1,
                b'?' => qm += 1,
                _ => {}
            }
        }
        for t in text.split_whitespace() {
            let s = trim_ascii_punct(t);
            let tok = if s.len() <= 2 && s.chars().count() <= 2 {
                t
            } else {
                s
            };
            let lower = tok.to_lowercase();
            let mut info = self.words.lookup(short_key(lower.as_bytes()), &lower);
            info.negate |= lower.contains("n't");
            sc.info.push(info);
            sc.upper.push(is_upper(tok));
        }
        (ep, qm)
    }
}

#[derive(Default)]
struct Scratch {
    upper: Vec<bool>,
    info: Vec<Info>,
    sentiments: Vec<f64>,
}

/// What VADER needs to know about a word, found with one hash lookup.
#[derive(Debug, Clone, Copy)]
struct Info {
    /// Lexicon valence, NaN when the word is not in the lexicon.
    valence: f64,
    /// +1 booster, −1 dampener, 0 neither.
    boost: i8,
    negate: bool,
    tag: Tag,
}

impl Default for Info {
    fn default() -> Self {
        Info {
            valence: f64::NAN,
            boost: 0,
            negate: false,
            tag: Tag::Other,
        }
    }
}

impl Info {
    fn valence(&self) -> Option<f64> {
        (!self.valence.is_nan()).then_some(self.valence)
    }

    fn boost(&self) -> Option<f64> {
        match self.boost {
            0 => None,
            b if b > 0 => Some(B_INCR),
            _ => Some(B_DECR),
        }
    }

    fn in_lexicon(&self) -> bool {
        !self.valence.is_nan()
    }
}

thread_local! {
    static SCRATCH: std::cell::RefCell<Scratch> = std::cell::RefCell::new(Scratch::default());
}

fn sentiment_valence(upper: &[bool], info: &[Info], cap_diff: bool, i: usize) -> f64 {
    let Some(base) = info[i].valence() else {
        return 0.0;
    };
    let n = info.len();
    let tag = |j: usize| info[j].tag;
    let mut valence = base;
    if tag(i) == Tag::No && i != n - 1 && info[i + 1].in_lexicon() {
        valence = 0.0;
    }
    if (i > 0 && tag(i - 1) == Tag::No)
        || (i > 1 && tag(i - 2) == Tag::No)
        || (i > 2 && tag(i - 3) == Tag::No && matches!(tag(i - 1), Tag::Or | Tag::Nor))
    {
        valence = base * N_SCALAR;
    }
    if upper[i] && cap_diff {
        if valence > 0.0 {
            valence += C_INCR;
        } else {
            valence -= C_INCR;
        }
    }
    for start_i in 0..3 {
        if i > start_i && !info[i - (start_i + 1)].in_lexicon() {
            let j = i - (start_i + 1);
            let mut s = scalar_inc_dec(info[j].boost(), upper[j], valence, cap_diff);
            if start_i == 1 && s != 0.0 {
                s *= 0.95;
            }
            if start_i == 2 && s != 0.0 {
                s *= 0.9;
            }
            valence += s;
            valence = negation_check(valence, info, start_i, i);
            if start_i == 2 {
                valence = special_idioms_check(valence, info, i);
            }
        }
    }
    least_check(valence, info, i)
}

fn scalar_inc_dec(boost: Option<f64>, word_upper: bool, valence: f64, cap_diff: bool) -> f64 {
    let Some(mut scalar) = boost else {
        return 0.0;
    };
    if valence < 0.0 {
        scalar *= -1.0;
    }
    if word_upper && cap_diff {
        if valence > 0.0 {
            scalar += C_INCR;
        } else {
            scalar -= C_INCR;
        }
    }
    scalar
}

fn negation_check(valence: f64, info: &[Info], start_i: usize, i: usize) -> f64 {
    let negated = |k: usize| info[k].negate;
    let tag = |j: usize| info[j].tag;
    let so_this = |t: Tag| t == Tag::So || t == Tag::This;
    match start_i {
        0 if negated(i - 1) => valence * N_SCALAR,
        1 => {
            if tag(i - 2) == Tag::Never && so_this(tag(i - 1)) {
                valence * 1.25
            } else if tag(i - 2) == Tag::Without && tag(i - 1) == Tag::Doubt {
                valence
            } else if negated(i - 2) {
                valence * N_SCALAR
            } else {
                valence
            }
        }
        2 => {
            // VADER's precedence: (never ∧ (so ∨ this)) ∨ so ∨ this, one word back.
            if (tag(i - 3) == Tag::Never && so_this(tag(i - 2))) || so_this(tag(i - 1)) {
                valence * 1.25
            } else if tag(i - 3) == Tag::Without
                && (tag(i - 2) == Tag::Doubt || tag(i - 1) == Tag::Doubt)
            {
                valence
            } else if negated(i - 3) {
                valence * N_SCALAR
            } else {
                valence
            }
        }
        _ => valence,
    }
}

/// VADER's special-case phrases, compared word by word.
fn special_seq(w: &[Info]) -> Option<f64> {
    use Tag::*;
    let t: [Tag; 3] = match w {
        [a, b] => [a.tag, b.tag, Other],
        [a, b, c] => [a.tag, b.tag, c.tag],
        _ => return None,
    };
    let two = w.len() == 2;
    Some(match t {
        [The, Shit, Other] | [The, Bomb, Other] if two => 3.0,
        [To, Die, For] => 3.0,
        [Bad, Ass, Other] if two => 1.5,
        [Bus, Stop, Other] if two => 0.0,
        [Yeah, Right, Other] if two => -2.0,
        [Kiss, Of, Death] => -1.5,
        [Beating, Heart, Other] if two => 3.5,
        _ => return None,
    })
}

/// Multi-word boosters ("just enough", "kind of", "sort of").
fn booster_words(w: &[Info]) -> Option<f64> {
    match w {
        [a, b]
            if matches!(
                (a.tag, b.tag),
                (Tag::Just, Tag::Enough) | (Tag::Kind, Tag::Of) | (Tag::Sort, Tag::Of)
            ) =>
        {
            Some(B_DECR)
        }
        _ => None,
    }
}

fn special_idioms_check(mut valence: f64, info: &[Info], i: usize) -> f64 {
    // onezero, twoonezero, twoone, threetwoone, threetwo — in VADER's order.
    let seqs: [&[Info]; 5] = [
        &info[i - 1..=i],
        &info[i - 2..=i],
        &info[i - 2..i],
        &info[i - 3..i],
        &info[i - 3..i - 1],
    ];
    for seq in seqs {
        if let Some(v) = special_seq(seq) {
            valence = v;
            break;
        }
    }
    if info.len() - 1 > i {
        if let Some(v) = special_seq(&info[i..=i + 1]) {
            valence = v;
        }
    }
    if info.len() - 1 > i + 1 {
        if let Some(v) = special_seq(&info[i..=i + 2]) {
            valence = v;
        }
    }
    for ngram in [&info[i - 3..i], &info[i - 3..i - 1], &info[i - 2..i]] {
        if let Some(b) = booster_words(ngram) {
            valence += b;
        }
    }
    valence
}

fn least_check(valence: f64, info: &[Info], i: usize) -> f64 {
    let tag = |j: usize| info[j].tag;
    if i > 1 && !info[i - 1].in_lexicon() && tag(i - 1) == Tag::Least {
        if tag(i - 2) != Tag::At && tag(i - 2) != Tag::Very {
            return valence * N_SCALAR;
        }
    } else if i > 0 && !info[i - 1].in_lexicon() && tag(i - 1) == Tag::Least {
        return valence * N_SCALAR;
    }
    valence
}

/// VADER's contrastive "but": halves what comes before, strengthens what follows. The
/// reference finds each value's *first* equal occurrence (`list.index`), so repeated
/// values are scaled at that index; kept as is to match its scores.
fn but_check(info: &[Info], sentiments: &mut [f64]) {
    let Some(bi) = info.iter().position(|w| w.tag == Tag::But) else {
        return;
    };
    for k in 0..sentiments.len() {
        let v = sentiments[k];
        let si = sentiments.iter().position(|x| *x == v).unwrap_or(k);
        if si < bi {
            sentiments[si] = v * 0.5;
        } else if si > bi {
            sentiments[si] = v * 1.5;
        }
    }
}

fn score_valence(sentiments: &[f64], ep_count: usize, qm_count: usize) -> Scores {
    if sentiments.is_empty() {
        return Scores {
            neg: 0.0,
            neu: 0.0,
            pos: 0.0,
            compound: 0.0,
        };
    }
    let mut sum: f64 = sentiments.iter().sum();
    let ep = ep_count.min(4) as f64 * 0.292;
    let qm = match qm_count {
        0 | 1 => 0.0,
        2 | 3 => qm_count as f64 * 0.18,
        _ => 0.96,
    };
    let punct = ep + qm;
    if sum > 0.0 {
        sum += punct;
    } else if sum < 0.0 {
        sum -= punct;
    }
    let compound = (sum / (sum * sum + 15.0).sqrt()).clamp(-1.0, 1.0);
    let (mut pos_sum, mut neg_sum, mut neu) = (0.0, 0.0, 0.0);
    for &s in sentiments {
        if s > 0.0 {
            pos_sum += s + 1.0;
        }
        if s < 0.0 {
            neg_sum += s - 1.0;
        }
        if s == 0.0 {
            neu += 1.0;
        }
    }
    if pos_sum > neg_sum.abs() {
        pos_sum += punct;
    } else if pos_sum < neg_sum.abs() {
        neg_sum -= punct;
    }
    let total = pos_sum + neg_sum.abs() + neu;
    Scores {
        neg: (neg_sum / total).abs(),
        neu: (neu / total).abs(),
        pos: (pos_sum / total).abs(),
        compound,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(v: &Vader, s: &str) -> f64 {
        (v.polarity(s).compound * 10_000.0).round() / 10_000.0
    }

    #[test]
    fn vader_readme_examples() {
        // Values printed by vaderSentiment 3.3.2 for its own README sentences.
        let v = Vader::new();
        assert_eq!(c(&v, "VADER is smart, handsome, and funny."), 0.8316);
        assert_eq!(c(&v, "VADER is smart, handsome, and funny!"), 0.8439);
        assert_eq!(c(&v, "VADER is very smart, handsome, and funny."), 0.8545);
        assert_eq!(c(&v, "VADER is VERY SMART, handsome, and FUNNY."), 0.9227);
        assert_eq!(c(&v, "VADER is VERY SMART, handsome, and FUNNY!!!"), 0.9342);
        assert_eq!(c(&v, "VADER is not smart, handsome, nor funny."), -0.7424);
        assert_eq!(c(&v, "The book was good."), 0.4404);
        assert_eq!(c(&v, "The plot was good, but the characters are uncompelling and the dialog is not great."), -0.7042);
        assert_eq!(c(&v, "Make sure you :) or :D today!"), 0.8633);
        assert_eq!(c(&v, "Catch utf-8 emoji such as 💘 and 💋 and 😁"), 0.875);
        assert_eq!(c(&v, "Not bad at all"), 0.431);
        assert_eq!(c(&v, ""), 0.0);
    }

    #[test]
    fn brand_terms_override_the_lexicon() {
        let v = Vader::new().with_terms([("rapport", 3.0)]);
        assert!(v.polarity("I use Rapport").compound > 0.5);
    }

    #[test]
    fn short_keys_pack_bytes_and_length() {
        let naive = |w: &str| {
            let mut k = [0u8; 16];
            k[..w.len()].copy_from_slice(w.as_bytes());
            k[15] = w.len() as u8;
            let k = u128::from_le_bytes(k);
            (k as u64, (k >> 64) as u64)
        };
        let word = "abcdefghijklmnopq";
        for n in 0..=15 {
            let w = &word.as_bytes()[..n];
            assert_eq!(short_key(w), Some(naive(&word[..n])), "length {n}");
            let upper = word[..n].to_ascii_uppercase();
            assert_eq!(packed_key(upper.as_bytes(), true), short_key(w), "{upper}");
        }
        assert_eq!(short_key(word.as_bytes()), None);
        assert_ne!(short_key(b"ab"), short_key(b"ab\0"));
        assert_eq!(
            ascii_lower(u64::from_le_bytes(*b"@AZ[`az{")),
            u64::from_le_bytes(*b"@az[`az{")
        );
    }

    proptest::proptest! {
        /// The byte-wise ASCII tokeniser and the general one agree on every ASCII text
        /// (without \x1c–\x1f, which Python splits on and Rust's `split_whitespace` not).
        #[test]
        fn ascii_and_unicode_tokenisers_agree(
            words in proptest::collection::vec(
                "([A-Za-z']{1,6}|NOT|n't|[!?.,:;)(]{1,3}|but|least|kind of|the shit|18|GREAT|good|bad|no|never so)",
                0..24,
            ),
            seps in proptest::collection::vec("[ \t\n]{1,2}", 24),
        ) {
            let mut text = String::new();
            for (w, s) in words.iter().zip(&seps) {
                text.push_str(w);
                text.push_str(s);
            }
            let v = Vader::new();
            let (mut a, mut b) = (Scratch::default(), Scratch::default());
            let pa = v.tokens_ascii(&text, &mut a);
            let pb = v.tokens_unicode(&text, &mut b);
            proptest::prop_assert_eq!(pa, pb);
            proptest::prop_assert_eq!(&a.upper, &b.upper);
            proptest::prop_assert_eq!(a.info.len(), b.info.len());
            for (x, y) in a.info.iter().zip(&b.info) {
                proptest::prop_assert_eq!(x.valence.to_bits(), y.valence.to_bits());
                proptest::prop_assert_eq!((x.boost, x.negate, x.tag), (y.boost, y.negate, y.tag));
            }
        }
    }

    #[test]
    fn labels() {
        assert_eq!(label(0.05), "positive");
        assert_eq!(label(-0.05), "negative");
        assert_eq!(label(0.0), "neutral");
    }
}
