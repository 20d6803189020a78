//! Language identification, fast enough to run on every event: the writing system
//! decides for scripts one language owns (Arabic, Hebrew, Devanagari, Japanese kana,
//! Hangul, Han, Thai, Greek); for Latin and Cyrillic text, the language whose most
//! frequent function words occur most. About a microsecond a tweet; whatlang's trigram
//! models took 44–78 µs, too slow to keep up with ingestion (docs/text.md).

use rustc_hash::FxHashMap;
use std::sync::OnceLock;

const LANGS: [(&str, &str); 18] = [
    ("en", "the a an and or but is are was were be been it this that to of in on for with my your you i we they he she not no have has had do does did will would can just so very what"),
    ("es", "el la los las un una y o pero es son fue era de del en con por para que no mi tu yo muy lo se su al como más este esta pero también"),
    ("pt", "o a os as um uma e ou mas é são foi era de do da dos das em no na com por para que não meu minha eu muito se seu sua ao como mais este esta também você"),
    ("fr", "le la les un une et ou mais est sont était de du des en dans avec pour que qui ne pas mon ma je tu il elle nous vous très ce cette au aux sur c'est"),
    ("de", "der die das ein eine und oder aber ist sind war waren zu von im in mit für dass nicht kein mein meine ich du er sie wir sehr auch auf den dem des es"),
    ("it", "il lo la i gli le un una e o ma è sono era di del della in con per che non mio mia io tu lui lei noi molto anche questo questa sono ho"),
    ("nl", "de het een en of maar is zijn was waren van in op met voor dat niet geen mijn ik jij hij zij wij heel ook dit deze er naar"),
    ("sv", "och att det som en ett är var inte jag du han hon vi de med för på av till den har men om så mycket också min mitt"),
    ("da", "og at det som en et er var ikke jeg du han hun vi de med for på af til den har men om så meget også min mit"),
    ("nb", "og at det som en et er var ikke jeg du han hun vi de med for på av til den har men om så mye også min mitt"),
    ("fi", "ja on ei se että oli ovat mutta minä sinä hän me te he tämä tuo kanssa myös kuin niin hyvin erittäin minun sinun"),
    ("pl", "i w na z że nie to jest są był była do się jak ale czy mój moja ja ty on ona my bardzo też ten ta dla od"),
    ("tr", "ve bir bu da de ile için ama çok değil ben sen o biz siz onlar var yok gibi daha en mi mı ne"),
    ("id", "dan yang di ke dari ini itu dengan untuk tidak ada saya kamu dia kami mereka sangat juga akan sudah bisa"),
    ("ro", "și în la cu de pe pentru că nu este sunt era un o mai foarte eu tu el ea noi voi acest această"),
    ("cs", "a v na s že není je jsou byl byla do se jak ale jestli můj moje já ty on ona my velmi také ten ta pro od"),
    ("ru", "и в на с что не это как но он она они мы вы я ты был была очень так же за по из у"),
    ("uk", "і в на з що не це як але він вона вони ми ви я ти був була дуже так же за по із у та"),
];

fn words() -> &'static FxHashMap<&'static str, u32> {
    static W: OnceLock<FxHashMap<&'static str, u32>> = OnceLock::new();
    W.get_or_init(|| {
        let mut m: FxHashMap<&'static str, u32> = FxHashMap::default();
        for (k, (_, ws)) in LANGS.iter().enumerate() {
            for w in ws.split(' ') {
                *m.entry(w).or_default() |= 1 << k;
            }
        }
        m
    })
}

fn script_language(c: char) -> Option<&'static str> {
    Some(match c as u32 {
        0x0600..=0x06FF | 0x0750..=0x077F => "ar",
        0x0590..=0x05FF => "he",
        0x0900..=0x097F => "hi",
        0x3040..=0x30FF => "ja",
        0xAC00..=0xD7AF | 0x1100..=0x11FF => "ko",
        0x4E00..=0x9FFF => "zh",
        0x0E00..=0x0E7F => "th",
        0x0370..=0x03FF => "el",
        _ => return None,
    })
}

/// `(code, confidence)`: ISO 639-1, `und` when nothing decides.
pub fn detect(text: &str) -> (&'static str, f64) {
    let mut letters = 0usize;
    let mut by_script: [(&str, usize); 8] = [
        ("ar", 0),
        ("he", 0),
        ("hi", 0),
        ("ja", 0),
        ("ko", 0),
        ("zh", 0),
        ("th", 0),
        ("el", 0),
    ];
    for c in text.chars().filter(|c| c.is_alphabetic()) {
        letters += 1;
        if let Some(l) = script_language(c) {
            if let Some(e) = by_script.iter_mut().find(|e| e.0 == l) {
                e.1 += 1;
            }
        }
    }
    // Kana anywhere means Japanese even among Han characters.
    let (kana, han) = (by_script[3].1, by_script[5].1);
    if kana > 0 && kana + han > letters / 2 {
        return ("ja", 0.9);
    }
    if let Some(&(l, n)) = by_script.iter().max_by_key(|e| e.1) {
        if n > 0 && n * 2 > letters {
            return (l, 0.9);
        }
    }
    let w = words();
    let mut counts = [0u32; LANGS.len()];
    let mut tokens = 0u32;
    for tok in text.split_whitespace() {
        let t = tok.trim_matches(|c: char| !c.is_alphanumeric() && c != '\'');
        if t.is_empty() || t.starts_with('@') || t.starts_with('#') {
            continue;
        }
        tokens += 1;
        let lower;
        let key = if t.chars().any(char::is_uppercase) {
            lower = t.to_lowercase();
            lower.as_str()
        } else {
            t
        };
        if let Some(&mask) = w.get(key) {
            for (k, c) in counts.iter_mut().enumerate() {
                if mask & (1 << k) != 0 {
                    *c += 1;
                }
            }
        }
    }
    let mut best = (0usize, 0u32);
    let mut second = 0u32;
    for (k, &c) in counts.iter().enumerate() {
        if c > best.1 {
            second = best.1;
            best = (k, c);
        } else if c > second {
            second = c;
        }
    }
    if best.1 == 0 || tokens < 2 {
        return ("und", 0.0);
    }
    // Margin over the runner-up, and enough evidence.
    let confidence = ((best.1 - second) as f64 / best.1 as f64) * (best.1 as f64 / 3.0).min(1.0);
    (LANGS[best.0].0, (confidence * 1000.0).round() / 1000.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn common_languages() {
        for (text, lang) in [
            ("I love this product and the support was great", "en"),
            ("Me encanta este producto, es muy bueno", "es"),
            ("Eu adoro este produto, é muito bom para mim", "pt"),
            ("Je ne suis pas content de la livraison", "fr"),
            (
                "Ich bin sehr zufrieden mit dem Produkt und der Lieferung",
                "de",
            ),
            ("Questo prodotto è molto bello e non costa molto", "it"),
            ("Dit is een heel goed product en ik ben blij", "nl"),
            ("Это очень хороший продукт, и я доволен", "ru"),
            ("この製品はとても良いです", "ja"),
            ("이 제품은 정말 좋아요", "ko"),
            ("这个产品非常好", "zh"),
            ("هذا المنتج رائع جدا", "ar"),
        ] {
            assert_eq!(detect(text).0, lang, "{text}");
        }
        assert_eq!(detect("ok").0, "und");
        assert_eq!(detect("12345 !!!").0, "und");
    }
}
