//! The UCI syntax: a parser for what `uci` writes and accepts, and a writer that writes like it.
//!
//! Grammar (as libuci's `file.c` reads it):
//!
//! ```text
//! package NAME                  optional, as `uci export` writes it
//! config TYPE ['NAME']          starts a section; NAME is optional (anonymous section)
//!     option KEY 'VALUE'        one value
//!     list KEY 'VALUE'          one more value of a list (repeat the line)
//! # comment                     to the end of the line, also after a command
//! ```
//!
//! - A word is made of pieces glued together: `'single quoted'` (no escapes, may span lines),
//!   `"double quoted"` (backslash escapes the next character, a backslash before a newline
//!   continues the line) and unquoted text (backslash escapes the next character). `uci` writes
//!   a `'` inside a value as `'\''`: close the quote, an escaped quote, reopen.
//! - Commands may be abbreviated to their first letter (`c`, `o`, `l`, `p`), as libuci allows,
//!   and `;` separates two commands on one line.
//! - Section names and option keys are letters, digits and `_`; a section type is any printable
//!   text without spaces.
//!
//! Entries keep their order and position (line, column) so the model can point at them; the
//! same key may appear more than once (the model decides what that means).

use super::Diagnostic;
use std::fmt::Write as _;

/// A 1-based position in the source text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct Pos {
    /// Line number, starting at 1.
    pub(crate) line: u32,
    /// Column in characters, starting at 1.
    pub(crate) col: u32,
}

/// A parsed UCI file: an optional `package` line and its sections, in file order.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Document {
    /// The name given by a `package` line, if any.
    package: Option<String>,
    /// The sections, in file order.
    pub(crate) sections: Vec<Section>,
}

/// One `config TYPE ['NAME']` section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Section {
    /// The section type (`braid`, `link`, `policy`, `peer`, ...).
    pub(crate) ty: String,
    /// The section name; `None` for an anonymous section.
    pub(crate) name: Option<String>,
    /// Where the `config` word is.
    pub(crate) pos: Pos,
    /// The `option` and `list` entries, in file order.
    pub(crate) entries: Vec<Entry>,
}

/// Whether an entry was written with `option` or `list`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// `option KEY 'VALUE'`
    Option,
    /// `list KEY 'VALUE'`
    List,
}

/// One `option` or `list` line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Entry {
    /// `option` or `list`.
    pub(crate) kind: Kind,
    /// The option name.
    pub(crate) key: String,
    /// The value, unquoted and unescaped.
    pub(crate) value: String,
    /// Where the key is.
    pub(crate) pos: Pos,
    /// Where the value starts.
    pub(crate) value_pos: Pos,
}

impl Document {
    /// The first section of type `ty` named `name`, appended (empty) if there is none.
    /// For rewriting a state file: find the section, [`Section::set_option`], [`write()`].
    pub fn section_mut(&mut self, ty: &str, name: &str) -> &mut Section {
        let i = match self
            .sections
            .iter()
            .position(|s| s.ty == ty && s.name.as_deref() == Some(name))
        {
            Some(i) => i,
            None => {
                self.sections.push(Section::new(ty, Some(name)));
                self.sections.len() - 1
            }
        };
        &mut self.sections[i]
    }
}

impl Section {
    /// Set `option key 'value'`: the first entry for `key` is replaced in place, any other
    /// entries for `key` (repeats, list values) are removed; appended if `key` was absent.
    pub fn set_option(&mut self, key: &str, value: &str) -> &mut Self {
        let mut first = true;
        self.entries.retain_mut(|e| {
            if e.key != key {
                return true;
            }
            if !first {
                return false;
            }
            first = false;
            e.kind = Kind::Option;
            e.value = value.to_string();
            true
        });
        if first {
            self.push_option(key, value);
        }
        self
    }

    /// A new section with no entries (position 0:0, for building documents to write).
    pub(crate) fn new(ty: &str, name: Option<&str>) -> Section {
        Section {
            ty: ty.to_string(),
            name: name.map(str::to_string),
            pos: Pos::default(),
            entries: Vec::new(),
        }
    }

    /// Append `option key 'value'`.
    pub(crate) fn push_option(&mut self, key: &str, value: &str) -> &mut Self {
        self.push(Kind::Option, key, value)
    }

    /// Append `list key 'value'`.
    pub(crate) fn push_list(&mut self, key: &str, value: &str) -> &mut Self {
        self.push(Kind::List, key, value)
    }

    /// Append `list key 'value'` for each of `values`, in order.
    pub(crate) fn push_lists<T: std::fmt::Display>(
        &mut self,
        key: &str,
        values: impl IntoIterator<Item = T>,
    ) -> &mut Self {
        for v in values {
            self.push_list(key, &v.to_string());
        }
        self
    }

    fn push(&mut self, kind: Kind, key: &str, value: &str) -> &mut Self {
        self.entries.push(Entry {
            kind,
            key: key.to_string(),
            value: value.to_string(),
            pos: Pos::default(),
            value_pos: Pos::default(),
        });
        self
    }

    /// The last `option` value for `key` (uci semantics: a later `option` overrides).
    pub(crate) fn option(&self, key: &str) -> Option<&str> {
        self.entries
            .iter()
            .rev()
            .find(|e| e.key == key && e.kind == Kind::Option)
            .map(|e| e.value.as_str())
    }
}

/// Is `s` a valid section name or option key (`[A-Za-z0-9_]+`, as libuci requires)?
pub(crate) fn valid_name(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

/// Is `s` a valid section type (printable ASCII, no spaces or quotes)?
pub(crate) fn valid_type(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| (33..=126).contains(&b) && b != b'\'' && b != b'"')
}

/// Quote a value as `uci` writes it: `'...'`, with each `'` written as `'\''`.
pub fn quote(value: &str) -> String {
    let mut out = String::with_capacity(value.len() + 2);
    out.push('\'');
    for c in value.chars() {
        if c == '\'' {
            out.push_str("'\\''");
        } else {
            out.push(c);
        }
    }
    out.push('\'');
    out
}

/// Write a document as `uci commit` does: a blank line before each section, entries indented
/// with a tab, values single-quoted. A `package` line is written only if the document has one.
///
/// `parse(write(doc))` gives back `doc` (positions aside) for any document whose section
/// types and names and option keys are valid (see [`valid_type`], [`valid_name`]).
pub fn write(doc: &Document) -> String {
    let mut out = String::new();
    if let Some(p) = &doc.package {
        if valid_name(p) {
            let _ = writeln!(out, "package {p}");
        } else {
            let _ = writeln!(out, "package {}", quote(p));
        }
    }
    for s in &doc.sections {
        out.push('\n');
        let _ = write!(out, "config {}", s.ty);
        if let Some(n) = &s.name {
            let _ = write!(out, " {}", quote(n));
        }
        out.push('\n');
        for e in &s.entries {
            let kw = match e.kind {
                Kind::Option => "option",
                Kind::List => "list",
            };
            let _ = writeln!(out, "\t{kw} {} {}", e.key, quote(&e.value));
        }
    }
    out
}

/// Parse UCI text. `file` is the name used in error messages.
///
/// Stops at the first syntax error, which names the line and column and what was expected.
pub fn parse(file: &str, text: &str) -> Result<Document, Diagnostic> {
    let mut lx = Lexer {
        file,
        chars: text.chars().collect(),
        i: 0,
        line: 1,
        col: 1,
    };
    let mut doc = Document::default();
    while let Some((words, end)) = lx.statement()? {
        if words.is_empty() {
            continue;
        }
        let cmd = &words[0];
        let err = |pos: Pos, msg: String| Diagnostic {
            file: file.to_string(),
            line: pos.line,
            col: Some(pos.col),
            message: msg,
        };
        let args = &words[1..];
        // Too few or too many words: the error points at the first word too many, or at the
        // end of the statement.
        let arity = |word: &str, usage: &str, max: usize| {
            let pos = args.get(max).map_or(end, |w| w.pos);
            err(pos, arity_msg(word, usage, args.len(), max))
        };
        let check_name = |w: &Word, what: &str| {
            if valid_name(&w.text) {
                return Ok(());
            }
            Err(err(
                w.pos,
                format!(
                    "invalid {what} name '{}': expected letters, digits and '_' only",
                    w.text
                ),
            ))
        };
        match cmd.text.as_str() {
            "package" | "p" => {
                let [name] = args else {
                    return Err(err(
                        cmd.pos,
                        arity_msg("package", "package NAME", args.len(), 1),
                    ));
                };
                if !doc.sections.is_empty() {
                    return Err(err(
                        cmd.pos,
                        "'package' must come before the first 'config' section".into(),
                    ));
                }
                doc.package = Some(name.text.clone());
            }
            "config" | "c" => {
                let (ty, name) = match args {
                    [ty] => (ty, None),
                    [ty, name] => (ty, Some(name)),
                    _ => return Err(arity("config", "config TYPE ['NAME']", 2)),
                };
                if !valid_type(&ty.text) {
                    return Err(err(
                        ty.pos,
                        format!(
                            "invalid section type '{}': expected printable text without spaces or quotes",
                            ty.text
                        ),
                    ));
                }
                if let Some(n) = name {
                    check_name(n, "section")?;
                }
                doc.sections.push(Section {
                    ty: ty.text.clone(),
                    name: name.map(|n| n.text.clone()),
                    pos: cmd.pos,
                    entries: Vec::new(),
                });
            }
            "option" | "o" | "list" | "l" => {
                let (kind, word) = if cmd.text.starts_with('o') {
                    (Kind::Option, "option")
                } else {
                    (Kind::List, "list")
                };
                let [key, value] = args else {
                    return Err(arity(word, &format!("{word} KEY 'VALUE'"), 2));
                };
                let Some(section) = doc.sections.last_mut() else {
                    return Err(err(
                        cmd.pos,
                        format!("'{word}' before any section: expected 'config TYPE' first"),
                    ));
                };
                check_name(key, "option")?;
                section.entries.push(Entry {
                    kind,
                    key: key.text.clone(),
                    value: value.text.clone(),
                    pos: key.pos,
                    value_pos: value.pos,
                });
            }
            other => {
                return Err(err(
                    cmd.pos,
                    format!(
                        "unknown command '{other}': expected 'config', 'option', 'list' or 'package'"
                    ),
                ));
            }
        }
    }
    Ok(doc)
}

fn arity_msg(word: &str, usage: &str, got: usize, max: usize) -> String {
    if got > max {
        format!("too many words after '{word}': expected {usage}")
    } else {
        format!("missing words after '{word}': expected {usage}")
    }
}

/// One word of a statement: its text after unquoting, and where it started.
struct Word {
    text: String,
    pos: Pos,
}

struct Lexer<'a> {
    file: &'a str,
    chars: Vec<char>,
    i: usize,
    line: u32,
    col: u32,
}

impl Lexer<'_> {
    fn peek(&self) -> Option<char> {
        self.chars.get(self.i).copied()
    }

    fn pos(&self) -> Pos {
        Pos {
            line: self.line,
            col: self.col,
        }
    }

    fn bump(&mut self) -> Option<char> {
        let c = self.peek()?;
        self.i += 1;
        if c == '\n' {
            self.line = self.line.saturating_add(1);
            self.col = 1;
        } else {
            self.col = self.col.saturating_add(1);
        }
        Some(c)
    }

    fn error(&self, pos: Pos, message: String) -> Diagnostic {
        Diagnostic {
            file: self.file.to_string(),
            line: pos.line,
            col: Some(pos.col),
            message,
        }
    }

    /// Is the next input a (CR)LF or the end? Used for backslash line continuation.
    fn at_line_end(&self) -> bool {
        match self.peek() {
            None | Some('\n') => true,
            Some('\r') => self.chars.get(self.i + 1) == Some(&'\n'),
            _ => false,
        }
    }

    fn skip_line_end(&mut self) {
        if self.peek() == Some('\r') {
            self.bump();
        }
        if self.peek() == Some('\n') {
            self.bump();
        }
    }

    /// Read the words of the next statement (up to a newline, `;` or end of input).
    /// Returns the words and the position where the statement ended; `None` at end of input.
    fn statement(&mut self) -> Result<Option<(Vec<Word>, Pos)>, Diagnostic> {
        if self.peek().is_none() {
            return Ok(None);
        }
        let mut words = Vec::new();
        loop {
            while matches!(self.peek(), Some(' ' | '\t' | '\r' | '\x0b' | '\x0c')) {
                self.bump();
            }
            match self.peek() {
                None => return Ok(Some((words, self.pos()))),
                Some('\n') | Some(';') => {
                    let end = self.pos();
                    self.bump();
                    return Ok(Some((words, end)));
                }
                Some('#') => {
                    while !matches!(self.peek(), None | Some('\n')) {
                        self.bump();
                    }
                }
                Some(_) => {
                    let w = self.word()?;
                    words.push(w);
                }
            }
        }
    }

    fn word(&mut self) -> Result<Word, Diagnostic> {
        let pos = self.pos();
        let mut text = String::new();
        loop {
            match self.peek() {
                None | Some(' ' | '\t' | '\r' | '\n' | ';' | '#' | '\x0b' | '\x0c') => break,
                // Quoted text: a backslash escapes only within double quotes.
                Some(q @ ('\'' | '"')) => {
                    let open = self.pos();
                    self.bump();
                    loop {
                        match self.bump() {
                            None => {
                                return Err(self.error(
                                    open,
                                    format!("unterminated {q} quote: expected a closing {q}"),
                                ))
                            }
                            Some(c) if c == q => break,
                            Some('\\') if q == '"' => {
                                if self.peek().is_none() {
                                    continue;
                                } else if self.at_line_end() {
                                    self.skip_line_end();
                                } else if let Some(c) = self.bump() {
                                    text.push(c);
                                }
                            }
                            Some(c) => text.push(c),
                        }
                    }
                }
                Some('\\') => {
                    self.bump();
                    if self.at_line_end() {
                        self.skip_line_end();
                    } else if let Some(c) = self.bump() {
                        text.push(c);
                    }
                }
                Some(c) => {
                    self.bump();
                    text.push(c);
                }
            }
        }
        Ok(Word { text, pos })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    impl Document {
        /// The first section of type `ty` named `name`.
        fn section(&self, ty: &str, name: &str) -> Option<&Section> {
            self.sections
                .iter()
                .find(|s| s.ty == ty && s.name.as_deref() == Some(name))
        }
    }

    impl Section {
        /// All `list` values for `key`, in order.
        fn list<'a>(&'a self, key: &'a str) -> impl Iterator<Item = &'a str> + 'a {
            self.entries
                .iter()
                .filter(move |e| e.key == key && e.kind == Kind::List)
                .map(|e| e.value.as_str())
        }
    }

    fn p(text: &str) -> Document {
        parse("t", text).unwrap_or_else(|e| panic!("{e}"))
    }

    fn e(text: &str) -> String {
        parse("t", text).expect_err("should fail").to_string()
    }

    #[test]
    fn typical_file() {
        let d = p("\nconfig braid 'main'\n\toption enabled '1'\n\tlist lan '10.0.0.0/24'\n\tlist lan '10.1.0.0/24'\n\nconfig link 'wan'\n\toption device 'eth1'\n");
        assert_eq!(d.package, None);
        assert_eq!(d.sections.len(), 2);
        let s = &d.sections[0];
        assert_eq!((s.ty.as_str(), s.name.as_deref()), ("braid", Some("main")));
        assert_eq!(s.pos, Pos { line: 2, col: 1 });
        assert_eq!(s.option("enabled"), Some("1"));
        assert_eq!(
            s.list("lan").collect::<Vec<_>>(),
            ["10.0.0.0/24", "10.1.0.0/24"]
        );
        assert_eq!(s.entries[0].pos, Pos { line: 3, col: 9 });
        assert_eq!(s.entries[0].value_pos, Pos { line: 3, col: 17 });
        assert_eq!(d.sections[1].option("device"), Some("eth1"));
    }

    #[test]
    fn quoting_styles() {
        let d = p(concat!(
            "package braid\n",
            "config policy\n",
            "  option a plain\n",
            "  option b \"dq \\\"x\\\" \\\\ y\"\n",
            "  option c 'it'\\''s'\n",
            "  option d ''\n",
            "  option e un\\ quoted\n",
            "  option f 'a'\"b\"c # trailing comment\n",
            "  option g 'multi\nline'\n",
            "  o h short; l i one\n",
            "  option j \"con\\\ntinued\"\n",
        ));
        assert_eq!(d.package.as_deref(), Some("braid"));
        let s = &d.sections[0];
        assert_eq!(s.name, None);
        assert_eq!(s.option("a"), Some("plain"));
        assert_eq!(s.option("b"), Some("dq \"x\" \\ y"));
        assert_eq!(s.option("c"), Some("it's"));
        assert_eq!(s.option("d"), Some(""));
        assert_eq!(s.option("e"), Some("un quoted"));
        assert_eq!(s.option("f"), Some("abc"));
        assert_eq!(s.option("g"), Some("multi\nline"));
        assert_eq!(s.option("h"), Some("short"));
        assert_eq!(s.list("i").collect::<Vec<_>>(), ["one"]);
        assert_eq!(s.option("j"), Some("continued"));
        // The entry after a multi-line value has the right line number.
        let h = s.entries.iter().find(|e| e.key == "h").unwrap();
        assert_eq!(h.pos.line, 11);
    }

    #[test]
    fn comments_blank_lines_crlf() {
        let d = p("# head\r\n\r\nconfig braid 'main' # c\r\n\toption x '1'\r\n   # indented\r\n");
        assert_eq!(d.sections.len(), 1);
        assert_eq!(d.sections[0].option("x"), Some("1"));
    }

    #[test]
    fn later_option_wins() {
        let d = p("config a\n option k 1\n option k 2\n");
        assert_eq!(d.sections[0].option("k"), Some("2"));
        assert_eq!(d.sections[0].entries.len(), 2);
    }

    #[test]
    fn error_messages() {
        assert_eq!(
            e("option x '1'\n"),
            "t:1:1: 'option' before any section: expected 'config TYPE' first"
        );
        assert_eq!(
            e("config braid 'main'\n\toption enabled '1\n"),
            "t:2:17: unterminated ' quote: expected a closing '"
        );
        assert_eq!(
            e("config a\n option k \"x\n"),
            "t:2:11: unterminated \" quote: expected a closing \""
        );
        assert_eq!(
            e("config a\n option k\n"),
            "t:2:10: missing words after 'option': expected option KEY 'VALUE'"
        );
        assert_eq!(
            e("config a\n list k 'a' 'b'\n"),
            "t:2:13: too many words after 'list': expected list KEY 'VALUE'"
        );
        assert_eq!(
            e("config\n"),
            "t:1:7: missing words after 'config': expected config TYPE ['NAME']"
        );
        assert_eq!(
            e("config a 'b' 'c'\n"),
            "t:1:14: too many words after 'config': expected config TYPE ['NAME']"
        );
        assert_eq!(
            e("config a 'my-name'\n"),
            "t:1:10: invalid section name 'my-name': expected letters, digits and '_' only"
        );
        assert_eq!(
            e("config a\n option 'a b' 1\n"),
            "t:2:9: invalid option name 'a b': expected letters, digits and '_' only"
        );
        assert_eq!(
            e("config 'a b'\n"),
            "t:1:8: invalid section type 'a b': expected printable text without spaces or quotes"
        );
        assert_eq!(
            e("\nconfig a\n  opton k 1\n"),
            "t:3:3: unknown command 'opton': expected 'config', 'option', 'list' or 'package'"
        );
        assert_eq!(
            e("config a\npackage b\n"),
            "t:2:1: 'package' must come before the first 'config' section"
        );
    }

    #[test]
    fn writer_matches_uci_layout() {
        let mut s = Section::new("braid", Some("main"));
        s.push_option("enabled", "0")
            .push_list("lan", "192.168.1.0/24");
        let mut a = Section::new("policy", None);
        a.push_option("name", "it's");
        let doc = Document {
            package: None,
            sections: vec![s, a],
        };
        assert_eq!(
            write(&doc),
            "\nconfig braid 'main'\n\toption enabled '0'\n\tlist lan '192.168.1.0/24'\n\nconfig policy\n\toption name 'it'\\''s'\n"
        );
    }

    #[test]
    fn rewrite_state() {
        let mut d = p("\nconfig quota 'lte1'\n\toption used '10'\n\toption used '11'\n");
        d.section_mut("quota", "lte1").set_option("used", "12");
        d.section_mut("quota", "lte2").set_option("used", "7");
        assert_eq!(
            write(&d),
            "\nconfig quota 'lte1'\n\toption used '12'\n\nconfig quota 'lte2'\n\toption used '7'\n"
        );
        assert_eq!(
            d.section("quota", "lte2").and_then(|s| s.option("used")),
            Some("7")
        );
        assert!(d.section("quota", "lte3").is_none());
    }

    fn strip(mut d: Document) -> Document {
        for s in &mut d.sections {
            s.pos = Pos::default();
            for e in &mut s.entries {
                e.pos = Pos::default();
                e.value_pos = Pos::default();
            }
        }
        d
    }

    fn arb_doc() -> impl Strategy<Value = Document> {
        let name = "[A-Za-z0-9_]{1,8}";
        let ty = "[A-Za-z0-9_.@:-]{1,8}";
        let value = "(?s).{0,12}";
        let entry = (any::<bool>(), name, value).prop_map(|(l, k, v)| Entry {
            kind: if l { Kind::List } else { Kind::Option },
            key: k,
            value: v,
            pos: Pos::default(),
            value_pos: Pos::default(),
        });
        let section = (
            ty,
            proptest::option::of(name),
            proptest::collection::vec(entry, 0..5),
        )
            .prop_map(|(ty, name, entries)| Section {
                ty,
                name,
                pos: Pos::default(),
                entries,
            });
        (
            proptest::option::of(name),
            proptest::collection::vec(section, 0..4),
        )
            .prop_map(|(package, sections)| Document { package, sections })
    }

    proptest! {
        #[test]
        fn round_trip(doc in arb_doc()) {
            let text = write(&doc);
            let back = parse("t", &text).map_err(|e| TestCaseError::fail(format!("{e}\n{text}")))?;
            prop_assert_eq!(strip(back), doc);
        }

        #[test]
        fn never_panics(text in "(?s).{0,200}") {
            let _ = parse("t", &text);
        }

        #[test]
        fn never_panics_on_uci_like_text(
            lines in proptest::collection::vec(
                "(config|option|list|package|c|o|l)? ?[a-z'\"\\\\#; ]{0,12}\r?", 0..10)
        ) {
            let _ = parse("t", &lines.join("\n"));
        }
    }
}
