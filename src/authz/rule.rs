//! The rule language of `phantom_token_require` (pure logic): parsed once at
//! configuration time, printed back, evaluated on a JWT's claims.
//! Specification: docs/behaviour.md, "Authorization rules".
//!
//! ```text
//! rule    = or
//! or      = and { "or" and }
//! and     = unary { "and" unary }
//! unary   = "not" unary | primary
//! primary = "(" rule ")" | claim "=" value | scope
//! claim   = name { "." name } | quoted        (a dotted path, or one quoted name)
//! value   = word | quoted
//! scope   = word | quoted
//! word    = one or more characters other than white space, ( ) = " '
//! quoted  = '"' { any character, \" and \\ escaped } '"'
//! ```
//!
//! `and` binds tighter than `or`; both associate to the left. The keywords
//! are lower case; quote a scope or value that is spelled like one.

use serde_json::{Map, Value};

/// Deepest nesting of parentheses and `not` accepted.
pub const MAX_DEPTH: usize = 64;

/// A parsed rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rule {
    /// The token has this scope (`scope` claim: space-separated string or array).
    Scope(String),
    /// The claim at `path` equals `value`, or is an array holding it.
    Claim {
        /// Object keys from the top of the claims.
        path: Vec<String>,
        /// The compared text (numbers and booleans compare by their JSON text).
        value: String,
    },
    /// Negation.
    Not(Box<Rule>),
    /// Both hold.
    And(Box<Rule>, Box<Rule>),
    /// Either holds.
    Or(Box<Rule>, Box<Rule>),
}

/// Why a rule does not parse: a message and the 1-based character position
/// it refers to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    /// 1-based position (in characters) of the offending token.
    pub position: usize,
    /// What is wrong there.
    pub message: String,
}

impl core::fmt::Display for ParseError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "{} at position {}", self.message, self.position)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    Open,
    Close,
    Equals,
    Word { text: String, quoted: bool },
}

/// A token and its 1-based character position.
type Spanned = (Token, usize);

fn is_word_char(c: char) -> bool {
    !c.is_whitespace() && !matches!(c, '(' | ')' | '=' | '"' | '\'')
}

fn is_keyword(word: &str) -> bool {
    matches!(word, "and" | "or" | "not")
}

fn tokenize(source: &str) -> Result<Vec<Spanned>, ParseError> {
    let mut tokens = Vec::new();
    let mut chars = source.chars().enumerate().peekable();
    while let Some((i, c)) = chars.next() {
        let position = i + 1;
        let token = match c {
            c if c.is_whitespace() => continue,
            '(' => Token::Open,
            ')' => Token::Close,
            '=' => Token::Equals,
            '\'' => {
                return Err(ParseError {
                    position,
                    message: "unexpected \"'\" (quote with \")".into(),
                })
            }
            '"' => {
                let mut text = String::new();
                loop {
                    match chars.next() {
                        None => {
                            return Err(ParseError {
                                position,
                                message: "unterminated quoted string".into(),
                            })
                        }
                        Some((_, '"')) => break,
                        Some((j, '\\')) => match chars.next() {
                            Some((_, c @ ('"' | '\\'))) => text.push(c),
                            _ => {
                                return Err(ParseError {
                                    position: j + 1,
                                    message: "bad escape (only \\\" and \\\\)".into(),
                                })
                            }
                        },
                        Some((_, c)) => text.push(c),
                    }
                }
                Token::Word { text, quoted: true }
            }
            c => {
                let mut text = String::from(c);
                while let Some(&(_, c)) = chars.peek() {
                    if !is_word_char(c) {
                        break;
                    }
                    text.push(c);
                    chars.next();
                }
                Token::Word {
                    text,
                    quoted: false,
                }
            }
        };
        tokens.push((token, position));
    }
    Ok(tokens)
}

struct Parser {
    tokens: Vec<Spanned>,
    next: usize,
    /// Position just past the end of the source (for "unexpected end").
    end: usize,
}

impl Parser {
    fn peek(&self) -> Option<&Spanned> {
        self.tokens.get(self.next)
    }

    fn keyword_is(&self, keyword: &str) -> bool {
        matches!(self.peek(), Some((Token::Word { text, quoted: false }, _)) if text == keyword)
    }

    fn error<T>(&self, message: &str) -> Result<T, ParseError> {
        let (found, position) = match self.peek() {
            None => ("end of rule".to_string(), self.end),
            Some((token, position)) => (describe(token), *position),
        };
        Err(ParseError {
            position,
            message: format!("{message}, found {found}"),
        })
    }

    fn or(&mut self, depth: usize) -> Result<Rule, ParseError> {
        let mut left = self.and(depth)?;
        while self.keyword_is("or") {
            self.next += 1;
            let right = self.and(depth)?;
            left = Rule::Or(Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn and(&mut self, depth: usize) -> Result<Rule, ParseError> {
        let mut left = self.unary(depth)?;
        while self.keyword_is("and") {
            self.next += 1;
            let right = self.unary(depth)?;
            left = Rule::And(Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn unary(&mut self, depth: usize) -> Result<Rule, ParseError> {
        if depth >= MAX_DEPTH {
            return self.error(&format!("nesting deeper than {MAX_DEPTH}"));
        }
        if self.keyword_is("not") {
            self.next += 1;
            return Ok(Rule::Not(Box::new(self.unary(depth + 1)?)));
        }
        self.primary(depth)
    }

    fn primary(&mut self, depth: usize) -> Result<Rule, ParseError> {
        match self.peek().cloned() {
            Some((Token::Open, _)) => {
                self.next += 1;
                let inner = self.or(depth + 1)?;
                match self.peek() {
                    Some((Token::Close, _)) => {
                        self.next += 1;
                        Ok(inner)
                    }
                    _ => self.error("expected \")\""),
                }
            }
            Some((Token::Word { text, quoted }, position)) => {
                if !quoted && is_keyword(&text) {
                    return self.error("expected a scope, a claim or \"(\"");
                }
                self.next += 1;
                if matches!(self.peek(), Some((Token::Equals, _))) {
                    self.next += 1;
                    let path = claim_path(&text, quoted, position)?;
                    match self.peek().cloned() {
                        Some((Token::Word { text: value, .. }, _)) => {
                            self.next += 1;
                            Ok(Rule::Claim { path, value })
                        }
                        _ => self.error("expected a value after \"=\""),
                    }
                } else if text.is_empty() {
                    Err(ParseError {
                        position,
                        message: "empty scope name".into(),
                    })
                } else {
                    Ok(Rule::Scope(text))
                }
            }
            _ => self.error("expected a scope, a claim or \"(\""),
        }
    }
}

fn describe(token: &Token) -> String {
    match token {
        Token::Open => "\"(\"".into(),
        Token::Close => "\")\"".into(),
        Token::Equals => "\"=\"".into(),
        Token::Word { text, .. } => format!("\"{text}\""),
    }
}

fn claim_path(text: &str, quoted: bool, position: usize) -> Result<Vec<String>, ParseError> {
    if quoted {
        if text.is_empty() {
            return Err(ParseError {
                position,
                message: "empty claim name".into(),
            });
        }
        return Ok(vec![text.to_string()]);
    }
    let path: Vec<String> = text.split('.').map(str::to_string).collect();
    if path.iter().any(String::is_empty) {
        return Err(ParseError {
            position,
            message: format!("empty name in claim path \"{text}\""),
        });
    }
    Ok(path)
}

/// Parses a rule.
pub fn parse(source: &str) -> Result<Rule, ParseError> {
    let tokens = tokenize(source)?;
    let mut parser = Parser {
        tokens,
        next: 0,
        end: source.chars().count() + 1,
    };
    if parser.peek().is_none() {
        return parser.error("empty rule");
    }
    let rule = parser.or(0)?;
    if parser.peek().is_some() {
        return parser.error("expected \"and\", \"or\" or the end of the rule");
    }
    Ok(rule)
}

/// A word as it is when it parses back to itself, else quoted.
fn print_word(out: &mut String, word: &str) {
    if !word.is_empty() && !is_keyword(word) && word.chars().all(is_word_char) {
        out.push_str(word);
    } else {
        print_quoted(out, word);
    }
}

/// `"word"`, with `"` and `\` escaped.
fn print_quoted(out: &mut String, word: &str) {
    out.push('"');
    for c in word.chars() {
        if matches!(c, '"' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
}

impl Rule {
    /// Whether the rule holds for these claims.
    pub fn holds(&self, claims: &Map<String, Value>) -> bool {
        match self {
            Rule::Scope(scope) => has_scope(claims, scope),
            Rule::Claim { path, value } => claim_matches(claims, path, value),
            Rule::Not(inner) => !inner.holds(claims),
            Rule::And(a, b) => a.holds(claims) && b.holds(claims),
            Rule::Or(a, b) => a.holds(claims) || b.holds(claims),
        }
    }

    /// The scopes the rule asks for (not under `not`), in order, once each:
    /// the `scope` of an `insufficient_scope` challenge.
    pub fn required_scopes(&self) -> Vec<&str> {
        fn walk<'a>(rule: &'a Rule, negated: bool, out: &mut Vec<&'a str>) {
            match rule {
                Rule::Scope(s) if !negated && !out.contains(&s.as_str()) => out.push(s),
                Rule::Scope(_) | Rule::Claim { .. } => {}
                Rule::Not(inner) => walk(inner, !negated, out),
                Rule::And(a, b) | Rule::Or(a, b) => {
                    walk(a, negated, out);
                    walk(b, negated, out);
                }
            }
        }
        let mut out = Vec::new();
        walk(self, false, &mut out);
        out
    }

    /// The rule in the language, with only the parentheses it needs;
    /// [`parse`] gives the same rule back.
    pub fn to_source(&self) -> String {
        let mut out = String::new();
        self.print(&mut out);
        out
    }

    fn print(&self, out: &mut String) {
        let group = |out: &mut String, rule: &Rule, needed: bool| {
            if needed {
                out.push('(');
                rule.print(out);
                out.push(')');
            } else {
                rule.print(out);
            }
        };
        match self {
            Rule::Scope(s) => print_word(out, s),
            Rule::Claim { path, value } => {
                let plain = path
                    .iter()
                    .all(|p| !p.is_empty() && !p.contains('.') && p.chars().all(is_word_char))
                    && !(path.len() == 1 && is_keyword(&path[0]));
                if plain {
                    for (i, name) in path.iter().enumerate() {
                        if i > 0 {
                            out.push('.');
                        }
                        out.push_str(name);
                    }
                } else {
                    print_quoted(out, path.first().map_or("", String::as_str));
                }
                out.push('=');
                print_word(out, value);
            }
            Rule::Not(inner) => {
                out.push_str("not ");
                group(out, inner, matches!(**inner, Rule::And(..) | Rule::Or(..)));
            }
            Rule::And(a, b) => {
                group(out, a, matches!(**a, Rule::Or(..)));
                out.push_str(" and ");
                group(out, b, matches!(**b, Rule::And(..) | Rule::Or(..)));
            }
            Rule::Or(a, b) => {
                group(out, a, false);
                out.push_str(" or ");
                group(out, b, matches!(**b, Rule::Or(..)));
            }
        }
    }
}

/// Whether the `scope` claim (space-separated string or array of strings)
/// holds `scope`.
fn has_scope(claims: &Map<String, Value>, scope: &str) -> bool {
    match claims.get("scope") {
        Some(Value::String(s)) => s.split_ascii_whitespace().any(|s| s == scope),
        Some(Value::Array(items)) => items.iter().any(|i| i.as_str() == Some(scope)),
        _ => false,
    }
}

/// Whether the claim at `path` equals `value`, or is an array with an
/// element equal to it. Numbers and booleans compare by their JSON text;
/// objects and `null` never match.
fn claim_matches(claims: &Map<String, Value>, path: &[String], value: &str) -> bool {
    let Some((first, rest)) = path.split_first() else {
        return false;
    };
    let mut at = claims.get(first);
    for name in rest {
        at = at.and_then(|v| v.as_object()).and_then(|o| o.get(name));
    }
    fn scalar_is(v: &Value, value: &str) -> bool {
        match v {
            Value::String(s) => s == value,
            Value::Number(n) => n.to_string() == value,
            Value::Bool(b) => (if *b { "true" } else { "false" }) == value,
            _ => false,
        }
    }
    match at {
        Some(Value::Array(items)) => items.iter().any(|i| scalar_is(i, value)),
        Some(v) => scalar_is(v, value),
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn claims(v: Value) -> Map<String, Value> {
        match v {
            Value::Object(m) => m,
            _ => unreachable!(),
        }
    }

    fn holds(rule: &str, c: Value) -> bool {
        parse(rule).unwrap().holds(&claims(c))
    }

    #[test]
    fn scopes_as_string_or_array() {
        assert!(holds("read", json!({"scope": "read write"})));
        assert!(holds("write", json!({"scope": ["read", "write"]})));
        assert!(!holds("admin", json!({"scope": "read write"})));
        assert!(!holds("read", json!({})));
        assert!(!holds("rea", json!({"scope": "read"})));
        assert!(!holds("admin", json!({"scope": ["read"]})));
        assert!(!holds("read", json!({"scope": 7})));
    }

    #[test]
    fn operators_and_precedence() {
        let c = json!({"scope": "a b"});
        assert!(holds("a and b", c.clone()));
        assert!(!holds("a and c", c.clone()));
        assert!(holds("c or a", c.clone()));
        assert!(holds("not c", c.clone()));
        assert!(!holds("not a", c.clone()));
        // and binds tighter: c and x or a = (c and x) or a
        assert!(holds("c and x or a", c.clone()));
        assert!(!holds("c and (x or a)", c.clone()));
        assert!(holds("not not a", c));
    }

    #[test]
    fn claims_paths_arrays_and_scalars() {
        let c = json!({"role": "editor", "groups": ["x", "y"], "org": {"id": "acme", "tier": 3},
                       "verified": true});
        assert!(holds("role=editor", c.clone()));
        assert!(!holds("role=admin", c.clone()));
        assert!(holds("groups=y", c.clone()));
        assert!(holds("org.id=acme", c.clone()));
        assert!(holds("org.tier=3", c.clone()));
        assert!(holds("verified=true", c.clone()));
        assert!(!holds("org=acme", c.clone()));
        assert!(!holds("org.id.x=acme", c.clone()));
        assert!(holds(
            r#""https://x.example/role"=a"#,
            json!({"https://x.example/role": "a"})
        ));
        assert!(holds(
            r#"name="Alice Smith""#,
            json!({"name": "Alice Smith"})
        ));
    }

    #[test]
    fn errors_name_the_position() {
        let e = parse("read and )").unwrap_err();
        assert_eq!(e.position, 10);
        assert!(e.message.contains("\")\""), "{e}");
        assert_eq!(parse("").unwrap_err().position, 1);
        assert_eq!(parse("(a").unwrap_err().position, 3);
        assert_eq!(parse("a b").unwrap_err().position, 3);
        assert_eq!(parse("a = ").unwrap_err().position, 5);
        assert_eq!(parse("\"abc").unwrap_err().position, 1);
        assert_eq!(parse("a..b=c").unwrap_err().position, 1);
        assert_eq!(parse("and").unwrap_err().position, 1);
        assert!(parse(&"(".repeat(100)).is_err());
        assert!(parse(&"not ".repeat(100)).is_err());
    }

    #[test]
    fn error_text_and_escape_position() {
        let e = parse(r#""a\x""#).unwrap_err();
        assert_eq!(e.position, 3);
        assert_eq!(
            e.to_string(),
            r#"bad escape (only \" and \\) at position 3"#
        );
    }

    #[test]
    fn nesting_limit() {
        let nested = |n: usize| format!("{}a{}", "(".repeat(n), ")".repeat(n));
        assert!(parse(&nested(MAX_DEPTH - 1)).is_ok());
        let e = parse(&nested(MAX_DEPTH)).unwrap_err();
        assert!(e.message.starts_with("nesting deeper than 64"), "{e}");
        assert!(parse(&format!("{}a", "not ".repeat(MAX_DEPTH - 1))).is_ok());
        assert!(parse(&format!("{}a", "not ".repeat(MAX_DEPTH))).is_err());
    }

    #[test]
    fn claim_paths_print_plain_when_they_can() {
        let claim = |path: &[&str]| Rule::Claim {
            path: path.iter().map(|p| p.to_string()).collect(),
            value: "v".into(),
        };
        assert_eq!(claim(&["x"]).to_source(), "x=v");
        assert_eq!(claim(&["a", "b"]).to_source(), "a.b=v");
        assert_eq!(claim(&["and"]).to_source(), r#""and"=v"#);
        assert_eq!(claim(&["and", "x"]).to_source(), "and.x=v");
        assert_eq!(claim(&["a.b"]).to_source(), r#""a.b"=v"#);
    }

    #[test]
    fn required_scopes_skip_negations_and_repeats() {
        let rule = parse("write and (admin or role=editor) and not banned and write").unwrap();
        assert_eq!(rule.required_scopes(), ["write", "admin"]);
    }

    #[test]
    fn printing_parses_back() {
        for source in [
            "a and b or c",
            "a and (b or c)",
            "not (a and b)",
            "a or (b or c)",
            "x.y=\"and\"",
            "\"a.b\"=\"q\\\"\"",
        ] {
            let rule = parse(source).unwrap();
            assert_eq!(parse(&rule.to_source()).unwrap(), rule, "{source}");
        }
    }
}
