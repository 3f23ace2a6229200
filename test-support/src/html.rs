//! A tiny, forgiving HTML scanner: just enough to find forms, their fields and the visible
//! text of a page (for error messages). Not a general HTML parser.

/// One `<form>` of a page.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Form {
    /// The `id` attribute, if any.
    pub id: Option<String>,
    /// The `action` attribute (entity-decoded), if any.
    pub action: Option<String>,
    /// The `method` attribute, lower-cased; `get` when absent.
    pub method: String,
    /// `<input>` fields with a name, in document order: (name, value, type).
    pub inputs: Vec<Input>,
}

/// One `<input>` of a form.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Input {
    /// `name` attribute.
    pub name: String,
    /// `value` attribute (entity-decoded), empty when absent.
    pub value: String,
    /// `type` attribute, lower-cased; `text` when absent.
    pub kind: String,
}

impl Form {
    /// Whether the form has an input with this name.
    pub fn has_input(&self, name: &str) -> bool {
        self.inputs.iter().any(|i| i.name == name)
    }

    /// The value of the first input with this name.
    pub fn value(&self, name: &str) -> Option<&str> {
        self.inputs
            .iter()
            .find(|i| i.name == name)
            .map(|i| i.value.as_str())
    }
}

struct Tag {
    name: String,
    closing: bool,
    attrs: Vec<(String, String)>,
}

impl Tag {
    fn attr(&self, name: &str) -> Option<&str> {
        self.attrs
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

enum Event<'a> {
    Tag(&'a Tag),
    Text(&'a str),
}

/// Walks the document, calling `on` for each tag and each text run (raw text of
/// `<script>`/`<style>` is skipped).
fn scan(html: &str, mut on: impl FnMut(Event<'_>)) {
    let bytes = html.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        let Some(lt) = html[i..].find('<').map(|p| p + i) else {
            on(Event::Text(&html[i..]));
            break;
        };
        if lt > i {
            on(Event::Text(&html[i..lt]));
        }
        if html[lt..].starts_with("<!--") {
            i = html[lt..].find("-->").map_or(bytes.len(), |p| lt + p + 3);
            continue;
        }
        // Find the closing '>' outside quotes.
        let mut j = lt + 1;
        let mut quote: Option<u8> = None;
        while j < bytes.len() {
            let c = bytes[j];
            match quote {
                Some(q) if c == q => quote = None,
                Some(_) => {}
                None if c == b'"' || c == b'\'' => quote = Some(c),
                None if c == b'>' => break,
                None => {}
            }
            j += 1;
        }
        let inner = &html[lt + 1..j.min(bytes.len())];
        i = (j + 1).min(bytes.len());
        if let Some(tag) = parse_tag(inner) {
            let raw_text = !tag.closing && (tag.name == "script" || tag.name == "style");
            let name = tag.name.clone();
            on(Event::Tag(&tag));
            if raw_text {
                let close = format!("</{name}");
                let rest = html[i..].to_ascii_lowercase();
                i = rest.find(&close).map_or(bytes.len(), |p| i + p);
            }
        }
    }
}

fn parse_tag(inner: &str) -> Option<Tag> {
    let (closing, inner) = match inner.strip_prefix('/') {
        Some(rest) => (true, rest),
        None => (false, inner),
    };
    let inner = inner.trim_end_matches('/');
    let name_end = inner
        .find(|c: char| c.is_whitespace() || c == '/')
        .unwrap_or(inner.len());
    let name = inner[..name_end].to_ascii_lowercase();
    if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric()) {
        return None;
    }
    let mut attrs = Vec::new();
    let rest = &inner[name_end..];
    let b = rest.as_bytes();
    let mut k = 0;
    while k < b.len() {
        while k < b.len() && (b[k].is_ascii_whitespace() || b[k] == b'/') {
            k += 1;
        }
        let start = k;
        while k < b.len() && !b[k].is_ascii_whitespace() && b[k] != b'=' && b[k] != b'/' {
            k += 1;
        }
        if start == k {
            k += 1;
            continue;
        }
        let key = rest[start..k].to_ascii_lowercase();
        while k < b.len() && b[k].is_ascii_whitespace() {
            k += 1;
        }
        let mut value = String::new();
        if k < b.len() && b[k] == b'=' {
            k += 1;
            while k < b.len() && b[k].is_ascii_whitespace() {
                k += 1;
            }
            if k < b.len() && (b[k] == b'"' || b[k] == b'\'') {
                let q = b[k];
                let vstart = k + 1;
                let vend = rest[vstart..]
                    .bytes()
                    .position(|c| c == q)
                    .map_or(b.len(), |p| vstart + p);
                value = decode_entities(&rest[vstart..vend]);
                k = vend + 1;
            } else {
                let vstart = k;
                while k < b.len() && !b[k].is_ascii_whitespace() {
                    k += 1;
                }
                value = decode_entities(&rest[vstart..k]);
            }
        }
        attrs.push((key, value));
    }
    Some(Tag {
        name,
        closing,
        attrs,
    })
}

/// Decodes the common named entities and numeric character references.
pub fn decode_entities(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(amp) = rest.find('&') {
        out.push_str(&rest[..amp]);
        rest = &rest[amp..];
        let Some(semi) = rest[..rest.len().min(12)].find(';') else {
            out.push('&');
            rest = &rest[1..];
            continue;
        };
        let entity = &rest[1..semi];
        let decoded = match entity {
            "amp" => Some('&'),
            "lt" => Some('<'),
            "gt" => Some('>'),
            "quot" => Some('"'),
            "apos" => Some('\''),
            "nbsp" => Some('\u{a0}'),
            _ => entity
                .strip_prefix("#x")
                .or_else(|| entity.strip_prefix("#X"))
                .and_then(|h| u32::from_str_radix(h, 16).ok())
                .or_else(|| entity.strip_prefix('#').and_then(|d| d.parse().ok()))
                .and_then(char::from_u32),
        };
        match decoded {
            Some(c) => {
                out.push(c);
                rest = &rest[semi + 1..];
            }
            None => {
                out.push('&');
                rest = &rest[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

/// All forms of a page, with their inputs (including inputs outside the form that name it
/// with a `form="id"` attribute).
pub fn forms(html: &str) -> Vec<Form> {
    let mut forms: Vec<Form> = Vec::new();
    let mut open: Option<usize> = None;
    let mut detached: Vec<(String, Input)> = Vec::new();
    scan(html, |event| {
        let Event::Tag(tag) = event else { return };
        match (tag.name.as_str(), tag.closing) {
            ("form", false) => {
                forms.push(Form {
                    id: tag.attr("id").map(str::to_owned),
                    action: tag.attr("action").map(str::to_owned),
                    method: tag.attr("method").unwrap_or("get").to_ascii_lowercase(),
                    inputs: Vec::new(),
                });
                open = Some(forms.len() - 1);
            }
            ("form", true) => open = None,
            ("input", false) => {
                let Some(name) = tag.attr("name") else { return };
                let input = Input {
                    name: name.to_owned(),
                    value: tag.attr("value").unwrap_or_default().to_owned(),
                    kind: tag.attr("type").unwrap_or("text").to_ascii_lowercase(),
                };
                match (tag.attr("form"), open) {
                    (Some(form_id), _) => detached.push((form_id.to_owned(), input)),
                    (None, Some(idx)) => forms[idx].inputs.push(input),
                    (None, None) => {}
                }
            }
            _ => {}
        }
    });
    for (form_id, input) in detached {
        if let Some(form) = forms.iter_mut().find(|f| f.id.as_deref() == Some(&form_id)) {
            form.inputs.push(input);
        }
    }
    forms
}

/// The visible text of a page, whitespace collapsed, at most `max` characters: for error
/// messages.
pub fn text_excerpt(html: &str, max: usize) -> String {
    let mut text = String::new();
    scan(html, |event| match event {
        Event::Tag(_) => text.push(' '),
        Event::Text(t) => text.push_str(&decode_entities(t)),
    });
    let collapsed = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if collapsed.chars().count() > max {
        let cut: String = collapsed.chars().take(max).collect();
        format!("{cut}...")
    } else {
        collapsed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_login_form() {
        let html = r#"<html><head><style>a > b { color: red }</style></head><body>
            <form autocomplete="off" action="http://127.0.0.1:1/interaction/a&amp;b" method="post">
              <input type="hidden" name="prompt" value="login"/>
              <input required type="text" name="login" placeholder="Enter any login" autofocus="on">
              <input required type="password" name="password" placeholder="and password" >
              <button type="submit">Sign-in</button>
            </form>
            <form id="op.logoutForm" method="POST" action="/session/end/confirm"><input type="hidden" name="xsrf" value="x1"/></form>
            <input type="hidden" form="op.logoutForm" name="extra" value="&quot;q&#39;">
            </body></html>"#;
        let forms = forms(html);
        assert_eq!(forms.len(), 2);
        assert_eq!(
            forms[0].action.as_deref(),
            Some("http://127.0.0.1:1/interaction/a&b")
        );
        assert_eq!(forms[0].method, "post");
        assert_eq!(forms[0].value("prompt"), Some("login"));
        assert!(forms[0].has_input("login") && forms[0].has_input("password"));
        assert_eq!(forms[1].id.as_deref(), Some("op.logoutForm"));
        assert_eq!(forms[1].method, "post");
        assert_eq!(forms[1].value("xsrf"), Some("x1"));
        assert_eq!(forms[1].value("extra"), Some("\"q'"));
    }

    #[test]
    fn excerpt_skips_style_and_tags() {
        let html = "<html><style>body { x: y }</style><h1>oops!</h1>\n<pre>invalid_request\n  bad&amp;thing</pre></html>";
        assert_eq!(text_excerpt(html, 100), "oops! invalid_request bad&thing");
        assert_eq!(text_excerpt(html, 5), "oops!...");
    }
}
