//! Property tests of the module's pure parsers: the `Authorization` header,
//! the introspection form body, `Cache-Control`, the cache TTL and the JWT
//! shape check. No input may panic, and each parser agrees with a small model
//! of its documented rules.
//!
//! The pure modules are compiled here on their own, as in `t/unit.rs` (their
//! own `#[cfg(test)]` unit tests run again in this binary: they are fast).
//!
//! `cargo test --test props` runs proptest's default 256 cases per property;
//! the long run (`make props-long`) sets `PROPTEST_CASES=100000`, which
//! proptest's default configuration reads from the environment.

#[path = "../src/authz/mod.rs"]
#[allow(dead_code)] // the handler uses the rest
mod authz;
#[path = "../src/bearer.rs"]
mod bearer;
#[path = "../src/cache/policy.rs"]
mod cache;
#[path = "../src/jwt.rs"]
mod jwt;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use proptest::collection::{btree_map, vec};
use proptest::prelude::*;
use serde_json::Value;

use cache::CacheControl;
use jwt::{JwtClaims, JwtShapeError};

/// `word` with each ASCII letter in a random case.
fn any_case(word: &'static str) -> impl Strategy<Value = String> {
    vec(any::<bool>(), word.len()).prop_map(move |upper| {
        word.chars()
            .zip(upper)
            .map(|(c, u)| {
                if u {
                    c.to_ascii_uppercase()
                } else {
                    c.to_ascii_lowercase()
                }
            })
            .collect()
    })
}

// ---------------------------------------------------------------------------
// Authorization: Bearer
// ---------------------------------------------------------------------------

/// The rule of `bearer_token`'s doc comment, written another way: the
/// scheme `bearer` in any case, at least one space (not a tab), more spaces
/// skipped, and a non-empty rest that is the token byte for byte.
fn model_bearer(header: &[u8]) -> Option<&[u8]> {
    let (scheme, rest) = (header.get(..6)?, &header[6..]);
    let spaces = rest.iter().take_while(|&&b| b == b' ').count();
    (scheme.eq_ignore_ascii_case(b"bearer") && spaces > 0 && spaces < rest.len())
        .then(|| &rest[spaces..])
}

/// Headers close to a Bearer header: a near scheme, a few blanks, a tail.
fn near_bearer_header() -> impl Strategy<Value = Vec<u8>> {
    let scheme = prop_oneof![
        4 => any_case("bearer"),
        1 => any_case("bear"),
        1 => any_case("bearerx"),
        1 => any_case("basic"),
        1 => any_case("dpop"),
        1 => Just(String::new()),
    ];
    let blanks = vec(prop_oneof![Just(b' '), Just(b'\t'), Just(b'\r')], 0..4);
    let tail = prop_oneof![
        "[!-~]{0,24}".prop_map(String::into_bytes),
        vec(any::<u8>(), 0..24),
    ];
    (scheme, blanks, tail).prop_map(|(s, b, t)| [s.into_bytes(), b, t].concat())
}

/// A token of visible ASCII without spaces (RFC 6750's b64token and more).
fn visible_token() -> impl Strategy<Value = String> {
    "[!-~]{1,64}"
}

/// A scheme that is not `bearer` (in any case).
fn other_scheme() -> impl Strategy<Value = String> {
    "[A-Za-z][A-Za-z0-9!#$%&'*+.^_`|~-]{0,12}"
        .prop_filter("not bearer", |s| !s.eq_ignore_ascii_case("bearer"))
}

proptest! {
    #[test]
    fn bearer_token_agrees_with_model_on_any_bytes(header in vec(any::<u8>(), 0..96)) {
        prop_assert_eq!(bearer::bearer_token(&header), model_bearer(&header));
    }

    #[test]
    fn bearer_token_agrees_with_model_near_the_scheme(header in near_bearer_header()) {
        let token = bearer::bearer_token(&header);
        prop_assert_eq!(token, model_bearer(&header));
        if let Some(token) = token {
            prop_assert!(!token.is_empty() && token[0] != b' ');
            prop_assert!(header.ends_with(token));
        }
    }

    #[test]
    fn bearer_token_extracts_the_token(
        scheme in any_case("bearer"),
        spaces in 1usize..16,
        token in visible_token(),
    ) {
        let header = format!("{scheme}{}{token}", " ".repeat(spaces));
        prop_assert_eq!(bearer::bearer_token(header.as_bytes()), Some(token.as_bytes()));
    }

    #[test]
    fn bearer_token_keeps_everything_after_the_spaces(
        scheme in any_case("bearer"),
        spaces in 1usize..4,
        token in visible_token(),
        tail in vec(any::<u8>(), 0..16),
    ) {
        let rest = [token.as_bytes(), &tail].concat();
        let header = [scheme.as_bytes(), " ".repeat(spaces).as_bytes(), &rest].concat();
        prop_assert_eq!(bearer::bearer_token(&header), Some(&rest[..]));
    }

    #[test]
    fn bearer_token_rejects_tab_separator(
        scheme in any_case("bearer"),
        after_tab in "[ \t]{0,3}",
        token in visible_token(),
    ) {
        let header = format!("{scheme}\t{after_tab}{token}");
        prop_assert_eq!(bearer::bearer_token(header.as_bytes()), None);
    }

    #[test]
    fn bearer_token_rejects_other_schemes(
        scheme in other_scheme(),
        spaces in 1usize..4,
        token in visible_token(),
    ) {
        let header = format!("{scheme}{}{token}", " ".repeat(spaces));
        prop_assert_eq!(bearer::bearer_token(header.as_bytes()), None);
    }

    #[test]
    fn bearer_token_rejects_a_missing_token(scheme in any_case("bearer"), spaces in 0usize..16) {
        let header = format!("{scheme}{}", " ".repeat(spaces));
        prop_assert_eq!(bearer::bearer_token(header.as_bytes()), None);
    }
}

// ---------------------------------------------------------------------------
// Introspection request body and token fingerprint
// ---------------------------------------------------------------------------

/// Decodes `application/x-www-form-urlencoded` to raw bytes (`+` is a space,
/// `%XX` a byte); `None` on a malformed escape.
fn form_decode_bytes(encoded: &str) -> Option<Vec<u8>> {
    let bytes = encoded.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 2;
            }
            b => out.push(b),
        }
        i += 1;
    }
    Some(out)
}

/// Bytes a form-encoded value may contain: nothing that ends or splits the
/// pair (`&`, `=`), no blank, no control or non-ASCII byte.
fn is_form_value_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'*' | b'-' | b'.' | b'_' | b'+' | b'%')
}

proptest! {
    #[test]
    fn introspection_body_round_trips_utf8(token in any::<String>()) {
        let body = bearer::introspection_body(token.as_bytes());
        let pairs: Vec<(String, String)> = form_urlencoded::parse(body.as_bytes())
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect();
        prop_assert_eq!(pairs, vec![("token".to_owned(), token)]);
    }

    #[test]
    fn introspection_body_round_trips_raw_bytes(token in vec(any::<u8>(), 0..64)) {
        let body = bearer::introspection_body(&token);
        let value = body.strip_prefix("token=");
        prop_assert!(value.is_some(), "{body:?}");
        let value = value.unwrap();
        prop_assert!(value.bytes().all(is_form_value_byte), "{body:?}");
        prop_assert_eq!(form_decode_bytes(value), Some(token.clone()));
        // A standard form parser sees one pair, the token decoded lossily.
        let pairs: Vec<_> = form_urlencoded::parse(body.as_bytes()).collect();
        prop_assert_eq!(pairs.len(), 1);
        prop_assert_eq!(&pairs[0].1, &String::from_utf8_lossy(&token));
    }

    #[test]
    fn token_fingerprint_is_8_hex_digits_of_its_sha256(token in vec(any::<u8>(), 0..96)) {
        let fingerprint = bearer::token_fingerprint(&token);
        prop_assert_eq!(fingerprint.len(), 8);
        prop_assert!(fingerprint.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')));
        let hash = <sha2::Sha256 as sha2::Digest>::digest(&token);
        let expected: String = hash[..4].iter().map(|b| format!("{b:02x}")).collect();
        prop_assert_eq!(&fingerprint, &expected);
        prop_assert_eq!(fingerprint, bearer::token_fingerprint(&token));
    }

    #[test]
    fn token_fingerprint_never_contains_the_token(
        token in prop_oneof!["[A-Za-z0-9_.~+/-]{8,64}", "[0-9a-f]{8,16}"],
    ) {
        let fingerprint = bearer::token_fingerprint(token.as_bytes());
        prop_assert!(!fingerprint.contains(token.as_str()), "{token:?} -> {fingerprint}");
    }
}

// ---------------------------------------------------------------------------
// Cache-Control
// ---------------------------------------------------------------------------

/// The argument of a `max-age` / `s-maxage` directive.
#[derive(Debug, Clone)]
enum Seconds {
    /// Delta-seconds that fit a u64 (printed with leading zeros, maybe quoted).
    Valid(u64),
    /// Anything that is not delta-seconds.
    Invalid,
}

/// One generated directive: what it means and how it is printed.
#[derive(Debug, Clone)]
struct Directive {
    meaning: Meaning,
    text: String,
}

#[derive(Debug, Clone, Copy)]
enum Meaning {
    MaxAge(Option<u64>),
    SMaxAge(Option<u64>),
    /// `no-store`, `no-cache` or `private`, with or without an argument.
    Forbid,
    /// Unknown directives, `public`, `max-age` without `=`, empty ones.
    Ignored,
}

fn blanks() -> impl Strategy<Value = String> {
    "[ \t]{0,2}"
}

/// Delta-seconds and a way to print them: leading zeros, quotes (the
/// parser strips any number of `"` on both sides).
fn seconds() -> impl Strategy<Value = (Seconds, String)> {
    let valid = (
        prop_oneof![0u64..100_000, any::<u64>()],
        0usize..3,
        0usize..3,
        0usize..3,
    )
        .prop_map(|(v, zeros, open, close)| {
            let text = format!(
                "{}{}{v}{}",
                "\"".repeat(open),
                "0".repeat(zeros),
                "\"".repeat(close)
            );
            (Seconds::Valid(v), text)
        });
    let invalid = prop_oneof![
        Just(String::new()),
        Just("\"\"".to_owned()),
        Just("-1".to_owned()),
        Just("1.5".to_owned()),
        Just("5s".to_owned()),
        Just("0x10".to_owned()),
        Just("1 2".to_owned()),
        Just("\" 5\"".to_owned()),
        // u64::MAX + 1: out of range is not cacheable.
        Just("18446744073709551616".to_owned()),
        "[a-zA-Z][a-zA-Z0-9]{0,4}",
    ]
    .prop_map(|text| (Seconds::Invalid, text));
    prop_oneof![3 => valid, 1 => invalid]
}

/// A name that none of the rules knows (in lower case).
fn unknown_name() -> impl Strategy<Value = String> {
    "[a-zA-Z][a-zA-Z0-9-]{0,10}".prop_filter("a known directive", |n| {
        !["max-age", "s-maxage", "no-store", "no-cache", "private"]
            .contains(&n.to_ascii_lowercase().as_str())
    })
}

fn directive() -> impl Strategy<Value = Directive> {
    let with_seconds = |name: &'static str, meaning: fn(Option<u64>) -> Meaning| {
        (
            any_case(name),
            blanks(),
            blanks(),
            blanks(),
            blanks(),
            seconds(),
        )
            .prop_map(move |(name, b0, b1, b2, b3, (secs, arg))| {
                let value = match secs {
                    Seconds::Valid(v) => Some(v),
                    Seconds::Invalid => None,
                };
                Directive {
                    meaning: meaning(value),
                    text: format!("{b0}{name}{b1}={b2}{arg}{b3}"),
                }
            })
    };
    let forbid = (
        prop_oneof![
            any_case("no-store"),
            any_case("no-cache"),
            any_case("private")
        ],
        blanks(),
        prop::option::of("\"?[a-zA-Z-]{0,8}\"?"),
        blanks(),
    )
        .prop_map(|(name, b0, arg, b1)| Directive {
            meaning: Meaning::Forbid,
            text: match arg {
                Some(arg) => format!("{b0}{name}={arg}{b1}"),
                None => format!("{b0}{name}{b1}"),
            },
        });
    let ignored = prop_oneof![
        (unknown_name(), prop::option::of("\"?[a-zA-Z0-9=-]{0,6}\"?")).prop_map(|(name, arg)| {
            match arg {
                Some(arg) => format!("{name}={arg}"),
                None => name,
            }
        }),
        any_case("public"),
        // No `=`: not a max-age with an argument.
        (
            prop_oneof![any_case("max-age"), any_case("s-maxage")],
            "( [0-9]{1,3})?"
        )
            .prop_map(|(name, digits)| format!("{name}{digits}")),
        Just(String::new()),
    ];
    let ignored = (blanks(), ignored, blanks()).prop_map(|(b0, text, b1)| Directive {
        meaning: Meaning::Ignored,
        text: format!("{b0}{text}{b1}"),
    });
    prop_oneof![
        3 => with_seconds("max-age", Meaning::MaxAge),
        2 => with_seconds("s-maxage", Meaning::SMaxAge),
        1 => forbid,
        2 => ignored,
    ]
}

/// The rules of `CacheControl`'s doc comments: `no-store`, `no-cache` and
/// `private` forbid caching; the smallest `max-age` counts, and one that is
/// not delta-seconds forbids caching; the last valid `s-maxage` wins over
/// `max-age`; anything else is ignored.
fn model_cache_control(directives: &[Directive]) -> CacheControl {
    let (mut max_age, mut s_maxage, mut forbidden) = (None::<u64>, None, false);
    for d in directives {
        match d.meaning {
            Meaning::MaxAge(Some(v)) => max_age = Some(max_age.map_or(v, |m| m.min(v))),
            Meaning::MaxAge(None) | Meaning::Forbid => forbidden = true,
            Meaning::SMaxAge(Some(v)) => s_maxage = Some(v),
            Meaning::SMaxAge(None) | Meaning::Ignored => {}
        }
    }
    CacheControl {
        max_age,
        s_maxage,
        forbidden,
    }
}

fn print_directives(directives: &[Directive]) -> String {
    directives
        .iter()
        .map(|d| d.text.as_str())
        .collect::<Vec<_>>()
        .join(",")
}

fn parse_cache_control(values: &[&[u8]]) -> CacheControl {
    let mut cc = CacheControl::default();
    for value in values {
        cc.parse_into(value);
    }
    cc
}

proptest! {
    #[test]
    fn cache_control_never_panics_and_is_idempotent(value in vec(any::<u8>(), 0..128)) {
        let once = parse_cache_control(&[&value]);
        prop_assert_eq!(parse_cache_control(&[&value, &value]), once);
    }

    #[test]
    fn cache_control_never_panics_on_directive_like_text(
        value in "[a-zA-Z0-9=\", \t;-]{0,64}",
    ) {
        parse_cache_control(&[value.as_bytes()]);
    }

    #[test]
    fn cache_control_agrees_with_model(directives in vec(directive(), 0..8)) {
        let text = print_directives(&directives);
        prop_assert_eq!(
            parse_cache_control(&[text.as_bytes()]),
            model_cache_control(&directives),
            "{:?}", text
        );
    }

    /// Several `Cache-Control` lines mean the same as one line with their
    /// values joined by commas (RFC 9110, 5.3); nginx hands the module one
    /// line at a time.
    #[test]
    fn cache_control_lines_fold_like_one_line(
        directives in vec(directive(), 0..8),
        split in any::<prop::sample::Index>(),
    ) {
        let at = split.index(directives.len() + 1);
        let (first, second) = directives.split_at(at);
        let (first, second) = (print_directives(first), print_directives(second));
        prop_assert_eq!(
            parse_cache_control(&[first.as_bytes(), second.as_bytes()]),
            model_cache_control(&directives),
            "{:?} then {:?}", first, second
        );
    }
}

// ---------------------------------------------------------------------------
// Cache TTL
// ---------------------------------------------------------------------------

fn any_cache_control() -> impl Strategy<Value = CacheControl> {
    (
        prop::option::of(prop_oneof![0u64..100_000, any::<u64>()]),
        prop::bool::weighted(0.2),
    )
        .prop_map(|(max_age, forbidden)| CacheControl {
            max_age,
            s_maxage: None,
            forbidden,
        })
}

/// Now in ms: around today, or anything.
fn any_now_ms() -> impl Strategy<Value = u64> {
    prop_oneof![1_600_000_000_000u64..2_000_000_000_000, any::<u64>()]
}

/// `exp` in seconds: near `now`, or anything.
fn any_exp(now_ms: u64) -> impl Strategy<Value = Option<u64>> {
    let now_s = now_ms / 1000;
    prop::option::of(prop_oneof![
        (now_s.saturating_sub(1000))..=(now_s.saturating_add(1000)),
        any::<u64>(),
    ])
}

fn ttl_case() -> impl Strategy<Value = (u64, CacheControl, Option<u64>, u64)> {
    any_now_ms().prop_flat_map(|now| {
        (
            Just(now),
            any_cache_control(),
            any_exp(now),
            prop_oneof![0u64..1_000_000, any::<u64>()],
        )
    })
}

proptest! {
    #[test]
    fn jwt_ttl_is_the_smallest_bound((now, cc, exp, max_ttl) in ttl_case()) {
        let ttl = cache::jwt_ttl_ms(now, cc, exp, max_ttl);
        prop_assert!(ttl <= max_ttl);
        if cc.forbidden {
            prop_assert_eq!(ttl, 0);
            return Ok(());
        }
        // In u128 nothing saturates: the bounds are exact.
        let mut bound = u128::from(max_ttl);
        if let Some(max_age) = cc.max_age {
            let max_age_ms = u128::from(max_age) * 1000;
            prop_assert!(u128::from(ttl) <= max_age_ms);
            bound = bound.min(max_age_ms);
        }
        if let Some(exp) = exp {
            let left_ms = (u128::from(exp) * 1000).saturating_sub(u128::from(now));
            prop_assert!(u128::from(ttl) <= left_ms, "cached past exp");
            bound = bound.min(left_ms);
        }
        // `exp` beyond u64 milliseconds (year 584 million) saturates, which
        // may only shorten the TTL.
        if exp.is_none_or(|exp| exp.checked_mul(1000).is_some()) {
            prop_assert_eq!(u128::from(ttl), bound);
        }
    }

    #[test]
    fn jwt_ttl_shrinks_as_time_passes(
        (now, cc, exp, max_ttl) in ttl_case(),
        later in 0u64..10_000_000,
    ) {
        let ttl = cache::jwt_ttl_ms(now, cc, exp, max_ttl);
        let ttl_later = cache::jwt_ttl_ms(now.saturating_add(later), cc, exp, max_ttl);
        prop_assert!(ttl_later <= ttl);
    }
}

// ---------------------------------------------------------------------------
// JWT shape and exp
// ---------------------------------------------------------------------------

/// Any JSON value (objects may have an `exp` member of their own: only the
/// payload's top-level `exp` counts).
fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        ".{0,8}".prop_map(Value::from),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            vec(inner.clone(), 0..4).prop_map(Value::from),
            btree_map(
                prop_oneof!["[a-z]{0,4}", Just("exp".to_owned())],
                inner,
                0..4
            )
            .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// Values of an `exp` claim: integers, negatives, floats, and non-numbers.
fn exp_value() -> impl Strategy<Value = Value> {
    prop_oneof![
        3 => (1_600_000_000u64..2_000_000_000).prop_map(Value::from),
        1 => any::<u64>().prop_map(Value::from),
        1 => (i64::MIN..0).prop_map(Value::from),
        1 => (1.6e9f64..2.0e9).prop_map(Value::from),
        1 => any::<f64>().prop_map(Value::from),
        1 => prop_oneof![Just(-0.0f64), Just(0.5), Just(1.8446744073709552e19), Just(1e300)]
            .prop_map(Value::from),
        1 => "[0-9]{1,10}".prop_map(Value::from),
        1 => json_value(),
    ]
}

/// A JWT NumericDate as `numeric_date`'s doc comment describes it: whole
/// seconds, fractions cut, negatives as 0 (and, beyond u64, u64::MAX);
/// `None` for anything but a number.
fn model_numeric_date(value: &Value) -> Option<u64> {
    let n = value.as_number()?;
    Some(if let Some(u) = n.as_u64() {
        u
    } else if n.is_i64() {
        0 // a negative integer
    } else {
        let f = n.as_f64()?;
        if f <= 0.0 {
            0
        } else if f >= 18_446_744_073_709_551_616.0 {
            u64::MAX
        } else {
            f.trunc() as u64
        }
    })
}

/// An object member: a key (`exp` or another), its value, and how the key
/// is spelled (each character maybe as a `\u00XX` escape).
#[derive(Debug, Clone)]
struct Member {
    key: String,
    escapes: Vec<bool>,
    value: Value,
}

fn member() -> impl Strategy<Value = Member> {
    let exp = (vec(any::<bool>(), 3), exp_value()).prop_map(|(escapes, value)| Member {
        key: "exp".to_owned(),
        escapes,
        value,
    });
    // Other keys, some close to `exp` (which must not count).
    let key = prop_oneof![
        3 => "[a-z_]{0,6}".boxed(),
        1 => any_case("exp").boxed(),
        1 => prop_oneof![Just("ex"), Just("expp"), Just("exp "), Just(" exp"), Just("éxp")]
            .prop_map(str::to_owned)
            .boxed(),
    ];
    let other =
        (key, vec(any::<bool>(), 6), json_value()).prop_map(|(key, escapes, value)| Member {
            key,
            escapes,
            value,
        });
    prop_oneof![1 => exp, 2 => other]
}

/// JSON whitespace (RFC 8259 allows it around every token).
fn json_ws() -> impl Strategy<Value = String> {
    prop_oneof![3 => Just(String::new()), 1 => "[ \t\r\n]{1,2}"]
}

/// A JSON object printed by hand, duplicate keys included, with random
/// whitespace and key escapes.
fn json_object() -> impl Strategy<Value = (Vec<Member>, String)> {
    (
        vec((member(), json_ws(), json_ws()), 0..5),
        json_ws(),
        json_ws(),
    )
        .prop_map(|(members, ws_in, ws_out)| {
            let body: Vec<String> = members
                .iter()
                .map(|(m, ws1, ws2)| {
                    let key: String = m
                        .key
                        .chars()
                        .zip(m.escapes.iter().chain(std::iter::repeat(&false)))
                        .map(|(c, &esc)| {
                            if esc {
                                format!("\\u{:04x}", c as u32)
                            } else {
                                c.to_string()
                            }
                        })
                        .collect();
                    let value = serde_json::to_string(&m.value).unwrap();
                    format!("{ws1}\"{key}\"{ws2}:{ws1}{value}{ws2}")
                })
                .collect();
            let text = format!("{ws_out}{{{ws_in}{}}}{ws_out}", body.join(","));
            (members.into_iter().map(|(m, ..)| m).collect(), text)
        })
}

/// The payload's `exp` as the module must read it: the last top-level
/// `exp` member, as printed (and parsed back) by serde_json.
fn model_exp(members: &[Member]) -> Option<u64> {
    let last = members.iter().rev().find(|m| m.key == "exp")?;
    let printed = serde_json::to_string(&last.value).unwrap();
    model_numeric_date(&serde_json::from_str(&printed).unwrap())
}

fn b64(bytes: impl AsRef<[u8]>) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// A well-formed compact JWS: `(segments, expected exp)`.
fn compact_jwt() -> impl Strategy<Value = ([String; 3], Option<u64>)> {
    (json_object(), json_object(), vec(any::<u8>(), 1..64)).prop_map(
        |((_, header), (members, payload), signature)| {
            (
                [b64(header), b64(payload), b64(signature)],
                model_exp(&members),
            )
        },
    )
}

/// JSON values that are not objects.
fn non_object_json() -> impl Strategy<Value = String> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        ".{0,8}".prop_map(Value::from),
        vec(json_value(), 0..4).prop_map(Value::from),
    ]
    .prop_map(|v| serde_json::to_string(&v).unwrap())
}

/// A printed JSON object with one byte replaced, inserted or removed:
/// often not JSON any more, sometimes still an object.
fn mutated_json_object() -> impl Strategy<Value = Vec<u8>> {
    (
        json_object(),
        any::<prop::sample::Index>(),
        prop_oneof![
            any::<u8>(),
            prop::sample::select(&b"{}[]\",:\\ 0eE-+.\x80\xff"[..])
        ],
        0u8..3,
    )
        .prop_map(|((_, text), at, byte, edit)| {
            let mut bytes = text.into_bytes();
            let i = at.index(bytes.len());
            match edit {
                0 => bytes[i] = byte,
                1 => bytes.insert(i, byte),
                _ => drop(bytes.remove(i)),
            }
            bytes
        })
}

/// An object whose only member is a string with raw bytes in it (invalid
/// UTF-8 included) or a `\u` escape of a lone surrogate.
fn object_with_odd_string() -> impl Strategy<Value = Vec<u8>> {
    let raw = vec(
        (0x20u8..=0xff).prop_filter("ends the string", |&b| b != b'"' && b != b'\\'),
        0..8,
    );
    let surrogate = (0xd800u32..0xe000).prop_map(|u| format!("\\u{u:04x}").into_bytes());
    (prop_oneof![raw, surrogate], "[a-z]{0,3}")
        .prop_map(|(inner, key)| [format!("{{\"{key}\":\"").as_bytes(), &inner, b"\"}"].concat())
}

/// `exp` as serde_json reads a whole payload into a `Value` (whose maps keep
/// the last of duplicate keys).
fn serde_json_exp(payload: &Value) -> Option<u64> {
    model_numeric_date(payload.get("exp")?)
}

fn is_base64url_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'-' || b == b'_'
}

/// A byte that is neither base64url nor `.`.
fn outside_alphabet_byte() -> impl Strategy<Value = u8> {
    let others: Vec<u8> = (0..=u8::MAX)
        .filter(|&b| b != b'.' && !is_base64url_byte(b))
        .collect();
    prop_oneof![
        3 => prop::sample::select(&b"=+/ \r\n"[..]),
        1 => prop::sample::select(others),
    ]
}

fn malformed() -> Result<JwtClaims, JwtShapeError> {
    Err(JwtShapeError::Malformed)
}

proptest! {
    #[test]
    fn jwt_check_never_panics_on_any_bytes(body in vec(any::<u8>(), 0..128)) {
        let result = jwt::check_compact_jwt(&body);
        prop_assert_eq!(body.is_empty(), result == Err(JwtShapeError::Empty));
        if result.is_ok() {
            prop_assert_eq!(body.iter().filter(|&&b| b == b'.').count(), 2);
            prop_assert!(body.iter().all(|&b| b == b'.' || is_base64url_byte(b)));
        }
    }

    #[test]
    fn jwt_check_never_panics_on_near_jwts(
        segments in vec(prop_oneof![
            "[A-Za-z0-9_=+/-]{0,12}",
            json_value().prop_map(|v| b64(serde_json::to_string(&v).unwrap())),
        ], 0..5),
    ) {
        let body = segments.join(".");
        let result = jwt::check_compact_jwt(body.as_bytes());
        if result.is_ok() {
            prop_assert_eq!(segments.len(), 3);
        }
    }

    #[test]
    fn jwt_check_accepts_compact_jwts_and_reads_exp((segments, exp) in compact_jwt()) {
        let body = segments.join(".");
        prop_assert_eq!(jwt::check_compact_jwt(body.as_bytes()), Ok(JwtClaims { exp }));
    }

    #[test]
    fn jwt_check_ignores_the_signature_bytes(
        (segments, exp) in compact_jwt(),
        signature in "[A-Za-z0-9_-]{1,64}",
    ) {
        let body = format!("{}.{}.{signature}", segments[0], segments[1]);
        prop_assert_eq!(jwt::check_compact_jwt(body.as_bytes()), Ok(JwtClaims { exp }));
    }

    #[test]
    fn jwt_check_rejects_an_extra_dot(
        (segments, _) in compact_jwt(),
        at in any::<prop::sample::Index>(),
    ) {
        let mut body = segments.join(".");
        body.insert(at.index(body.len() + 1), '.');
        prop_assert_eq!(jwt::check_compact_jwt(body.as_bytes()), malformed());
    }

    /// `=` padding, `+` `/` (base64, not base64url), blanks, CR/LF, any
    /// byte outside the alphabet, anywhere.
    #[test]
    fn jwt_check_rejects_a_byte_outside_the_alphabet(
        (segments, _) in compact_jwt(),
        byte in outside_alphabet_byte(),
        at in any::<prop::sample::Index>(),
    ) {
        let mut body = segments.join(".").into_bytes();
        body.insert(at.index(body.len() + 1), byte);
        prop_assert_eq!(jwt::check_compact_jwt(&body), malformed());
    }

    #[test]
    fn jwt_check_rejects_padding_at_a_segment_end(
        (mut segments, _) in compact_jwt(),
        which in 0usize..3,
        pad in "={1,2}",
    ) {
        segments[which].push_str(&pad);
        let body = segments.join(".");
        prop_assert_eq!(jwt::check_compact_jwt(body.as_bytes()), malformed());
    }

    /// (Found `header.payload.` accepted, before the `signature.is_empty()`
    /// check.)
    #[test]
    fn jwt_check_rejects_an_empty_segment(
        (mut segments, _) in compact_jwt(),
        which in 0usize..3,
    ) {
        segments[which].clear();
        let body = segments.join(".");
        prop_assert_eq!(jwt::check_compact_jwt(body.as_bytes()), malformed(), "{:?}", body);
    }

    #[test]
    fn jwt_check_rejects_an_empty_signature((segments, _) in compact_jwt()) {
        let body = format!("{}.{}.", segments[0], segments[1]);
        prop_assert_eq!(jwt::check_compact_jwt(body.as_bytes()), malformed(), "{:?}", body);
    }

    #[test]
    fn jwt_check_rejects_non_object_json(
        (mut segments, _) in compact_jwt(),
        in_payload in any::<bool>(),
        json in non_object_json(),
    ) {
        segments[usize::from(in_payload)] = b64(&json);
        let body = segments.join(".");
        prop_assert_eq!(jwt::check_compact_jwt(body.as_bytes()), malformed(), "{}", json);
    }

    /// Whatever serde_json parses as an object is accepted, with the `exp`
    /// serde_json reads.
    #[test]
    fn jwt_check_accepts_what_serde_json_parses_as_an_object(
        payload in prop_oneof![mutated_json_object(), object_with_odd_string()],
    ) {
        let body = format!("e30.{}.c2ln", b64(&payload));
        let result = jwt::check_compact_jwt(body.as_bytes());
        if let Ok(value @ Value::Object(_)) = serde_json::from_slice::<Value>(&payload) {
            prop_assert_eq!(result, Ok(JwtClaims { exp: serde_json_exp(&value) }));
        }
    }

    /// And nothing else: RFC 7519 wants the payload to be UTF-8 JSON
    /// (invalid UTF-8, lone surrogate escapes and too deep nesting in a
    /// skipped member are rejected too).
    #[test]
    fn jwt_check_rejects_what_serde_json_rejects(
        payload in prop_oneof![mutated_json_object(), object_with_odd_string()],
    ) {
        let body = format!("e30.{}.c2ln", b64(&payload));
        let result = jwt::check_compact_jwt(body.as_bytes());
        if !matches!(serde_json::from_slice::<Value>(&payload), Ok(Value::Object(_))) {
            prop_assert_eq!(result, malformed(), "{:?}", String::from_utf8_lossy(&payload));
        }
    }

    #[test]
    fn jwt_check_rejects_trailing_data_after_the_json(
        (_, payload) in json_object(),
        trailing in prop_oneof![Just("{}"), Just(","), Just("}"), Just("]"), Just("x"), Just("0")],
        (segments, _) in compact_jwt(),
        in_payload in any::<bool>(),
    ) {
        let mut segments = segments;
        segments[usize::from(in_payload)] = b64(format!("{payload}{trailing}"));
        let body = segments.join(".");
        prop_assert_eq!(jwt::check_compact_jwt(body.as_bytes()), malformed());
    }
}

// ---------------------------------------------------------------------------
// `phantom_token_require` rules: any text parses or fails cleanly; a rule
// printed back parses to the same tree.

use authz::rule::{self, Rule};

/// A scope or claim value: plain words, keywords, and any text at all.
fn rule_word() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-z][a-z0-9:/._-]{0,8}",
        Just("and".to_string()),
        Just("or".to_string()),
        Just("not".to_string()),
        ".{1,6}",
    ]
}

fn rule_tree() -> impl Strategy<Value = Rule> {
    let leaf = prop_oneof![
        rule_word().prop_map(Rule::Scope),
        (
            vec("[a-z_][a-z0-9_]{0,5}", 1..4),
            prop_oneof![rule_word(), Just(String::new())]
        )
            .prop_map(|(path, value)| Rule::Claim { path, value }),
        (".{1,8}", rule_word()).prop_map(|(name, value)| Rule::Claim {
            path: vec![name],
            value
        }),
    ];
    leaf.prop_recursive(6, 48, 2, |inner| {
        prop_oneof![
            inner.clone().prop_map(|r| Rule::Not(Box::new(r))),
            (inner.clone(), inner.clone()).prop_map(|(a, b)| Rule::And(Box::new(a), Box::new(b))),
            (inner.clone(), inner).prop_map(|(a, b)| Rule::Or(Box::new(a), Box::new(b))),
        ]
    })
}

proptest! {
    #[test]
    fn rule_parser_never_panics(source in ".{0,64}") {
        let _ = rule::parse(&source);
    }

    #[test]
    fn rule_parser_never_panics_on_its_own_alphabet(
        source in r#"[()=" \\a-z.]{0,40}|((and|or|not|\(|\)|=|"|x|y\.z| )){0,30}"#
    ) {
        if let Ok(rule) = rule::parse(&source) {
            prop_assert_eq!(rule::parse(&rule.to_source()), Ok(rule));
        }
    }

    #[test]
    fn printed_rules_parse_back_to_the_same_tree(rule in rule_tree()) {
        let source = rule.to_source();
        prop_assert_eq!(rule::parse(&source), Ok(rule), "printed as {}", source);
    }

    #[test]
    fn errors_point_inside_the_rule(source in ".{0,40}") {
        if let Err(e) = rule::parse(&source) {
            prop_assert!(e.position >= 1 && e.position <= source.chars().count() + 1, "{:?}", e);
        }
    }
}
