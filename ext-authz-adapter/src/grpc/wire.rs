//! The `Check` on the wire, without the generated messages on the hot path.
//!
//! prost's `CheckRequest` decodes every header of `attributes.request.http` into a
//! `HashMap<String, String>` (two allocations and a SipHash per header) that
//! [`super::request_parts`] then copies once more into an [`http::HeaderMap`]; its
//! `OkHttpResponse` copies every name of the allow's `headers_to_remove` (dozens of static
//! names) into a `String` and every identity header into two. Here the request is read straight
//! from the message's bytes into the [`Parts`] the engine judges (header values and the path
//! share the message buffer), and an allow is written straight from the [`Allow`] into the
//! encode buffer (the static name lists encoded once per process).
//!
//! Same answers as the generated messages, byte for byte (the tests below hold both paths to
//! it). Anything unusual goes to the generated messages instead ([`Incoming::Full`]): a wire
//! format prost would refuse or merge (a repeated singular message, groups, a string that is
//! not UTF-8, an unexpected wire type), or a header name sent twice in the `headers` map
//! (protobuf's last-wins). Fields the check never reads outside `attributes.request.http`
//! (source, destination, metadata, context extensions) are skipped, not validated.

use std::borrow::Cow;
use std::ops::Range;
use std::sync::OnceLock;

use bytes::{Buf, BufMut, Bytes};
use http::request::Parts;
use http::{HeaderMap, HeaderName, HeaderValue, Method, Request, Uri, header};
use oidc_core::decision::Allow;
use prost::Message;
use tonic::Status;
use tonic::codec::{BufferSettings, Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};

use super::{CheckRequest, CheckResponse, MAX_REQUEST_HEADERS, RequestError, X_FORWARDED_PROTO};

/// A decoded `Check` request.
// `Parts` unboxed: the common variant, moved twice, where a box would cost an allocation.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub(super) enum Incoming {
    /// The request the engine judges, or why it cannot be rebuilt (with Envoy's request id).
    Parts(Result<Parts, (RequestError, String)>),
    /// No `attributes.request.http`.
    Missing,
    /// Decoded by the generated messages (see the module documentation).
    Full(Box<CheckRequest>),
}

/// The answer to encode.
#[derive(Debug)]
pub(super) enum Answer {
    /// `OK` with the allow's headers.
    Allow(Box<Allow>),
    /// `OK` with no identity, every identity header removed (a skipped route).
    Skip,
    /// Anything else (denials), as the generated message.
    Message(Box<CheckResponse>),
}

/// The codec of the `Check` method: [`Incoming`] in, [`Answer`] out.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct CheckCodec;

impl Codec for CheckCodec {
    type Encode = Answer;
    type Decode = Incoming;
    type Encoder = CheckCodec;
    type Decoder = CheckCodec;

    fn encoder(&mut self) -> Self::Encoder {
        CheckCodec
    }

    fn decoder(&mut self) -> Self::Decoder {
        CheckCodec
    }
}

impl Decoder for CheckCodec {
    type Item = Incoming;
    type Error = Status;

    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<Incoming>, Status> {
        let message = src.copy_to_bytes(src.remaining());
        decode(message).map(Some)
    }

    fn buffer_settings(&self) -> BufferSettings {
        BufferSettings::default()
    }
}

impl Encoder for CheckCodec {
    type Item = Answer;
    type Error = Status;

    fn encode(&mut self, answer: Answer, dst: &mut EncodeBuf<'_>) -> Result<(), Status> {
        match answer {
            Answer::Allow(allow) => encode_allow(&allow, dst),
            Answer::Skip => dst.put_slice(skip_response()),
            Answer::Message(message) => message
                .encode(dst)
                .map_err(|e| Status::internal(e.to_string()))?,
        }
        Ok(())
    }

    fn buffer_settings(&self) -> BufferSettings {
        BufferSettings::default()
    }
}

/// Decodes a `CheckRequest` message: straight into [`Parts`] when it is an ordinary one, else
/// with the generated messages (whose decode error is the answer for a malformed one, as with
/// tonic's prost codec).
pub(super) fn decode(message: Bytes) -> Result<Incoming, Status> {
    match lean(&message) {
        Ok(incoming) => Ok(incoming),
        Err(Unusual) => CheckRequest::decode(message)
            .map(|request| Incoming::Full(Box::new(request)))
            .map_err(|e| Status::internal(e.to_string())),
    }
}

/// The message needs the generated messages (see the module documentation).
#[derive(Debug)]
struct Unusual;

// Protobuf wire types.
const VARINT: u8 = 0;
const FIXED64: u8 = 1;
const LEN: u8 = 2;
const FIXED32: u8 = 5;

/// One field of a message: its number, wire type and, for `LEN`, where its bytes are.
struct Field {
    number: u32,
    wire: u8,
    bytes: Range<usize>,
}

/// The fields of the message at `range` of `buf`, in order.
struct Fields<'a> {
    buf: &'a [u8],
    pos: usize,
    end: usize,
}

impl<'a> Fields<'a> {
    fn new(buf: &'a [u8], range: Range<usize>) -> Self {
        Fields {
            buf,
            pos: range.start,
            end: range.end,
        }
    }

    fn varint(&mut self) -> Result<u64, Unusual> {
        // Nearly every varint here (keys, lengths below 128) is one byte.
        if let Some(&byte) = self.buf[..self.end].get(self.pos)
            && byte < 0x80
        {
            self.pos += 1;
            return Ok(u64::from(byte));
        }
        let mut value = 0u64;
        for shift in (0..64).step_by(7) {
            let byte = *self.buf[..self.end].get(self.pos).ok_or(Unusual)?;
            self.pos += 1;
            value |= u64::from(byte & 0x7f) << shift;
            if byte < 0x80 {
                // The tenth byte may only carry the top bit.
                return if shift == 63 && byte > 1 {
                    Err(Unusual)
                } else {
                    Ok(value)
                };
            }
        }
        Err(Unusual)
    }

    fn next(&mut self) -> Result<Option<Field>, Unusual> {
        if self.pos >= self.end {
            return Ok(None);
        }
        // prost refuses a key above u32::MAX (its field number has 29 bits).
        let key = u32::try_from(self.varint()?).map_err(|_| Unusual)?;
        let number = key >> 3;
        let wire = (key & 7) as u8;
        if number == 0 {
            return Err(Unusual);
        }
        let start = self.pos;
        match wire {
            VARINT => {
                self.varint()?;
            }
            FIXED64 => self.pos += 8,
            FIXED32 => self.pos += 4,
            LEN => {
                let len = usize::try_from(self.varint()?).map_err(|_| Unusual)?;
                let start = self.pos;
                self.pos = start.checked_add(len).ok_or(Unusual)?;
                if self.pos > self.end {
                    return Err(Unusual);
                }
                return Ok(Some(Field {
                    number,
                    wire,
                    bytes: start..self.pos,
                }));
            }
            // Groups (deprecated) and invalid wire types.
            _ => return Err(Unusual),
        }
        if self.pos > self.end {
            return Err(Unusual);
        }
        Ok(Some(Field {
            number,
            wire,
            bytes: start..self.pos,
        }))
    }
}

impl Field {
    /// A `LEN` field's bytes (a string, bytes or a message).
    fn len(&self) -> Result<Range<usize>, Unusual> {
        if self.wire == LEN {
            Ok(self.bytes.clone())
        } else {
            Err(Unusual)
        }
    }
}

/// The one occurrence of the `LEN` field `number` of the message at `range`.
fn only(buf: &[u8], range: Range<usize>, number: u32) -> Result<Option<Range<usize>>, Unusual> {
    let mut fields = Fields::new(buf, range);
    let mut found = None;
    while let Some(field) = fields.next()? {
        if field.number == number {
            if found.is_some() {
                // prost merges a repeated singular message.
                return Err(Unusual);
            }
            found = Some(field.len()?);
        }
    }
    Ok(found)
}

/// A string field: its bytes, checked to be UTF-8 as prost checks them.
fn string(buf: &[u8], field: &Field) -> Result<Range<usize>, Unusual> {
    let range = field.len()?;
    std::str::from_utf8(&buf[range.clone()]).map_err(|_| Unusual)?;
    Ok(range)
}

/// The fields of `attributes.request.http` the check reads (the last of each, as prost).
struct Http {
    id: Range<usize>,
    method: Range<usize>,
    path: Range<usize>,
    host: Range<usize>,
    scheme: Range<usize>,
    query: Range<usize>,
    /// Entries of the `headers` map.
    headers: usize,
    /// The first [`KEPT`] of them, as read: key and value ranges.
    kept: [[u32; 4]; KEPT],
    raw_headers: bool,
}

/// How many `headers` map entries the first reading keeps (Envoy sends a dozen or two); with
/// more, the second reading walks the message again.
const KEPT: usize = 48;

impl Default for Http {
    fn default() -> Self {
        Http {
            id: 0..0,
            method: 0..0,
            path: 0..0,
            host: 0..0,
            scheme: 0..0,
            query: 0..0,
            headers: 0,
            kept: [[0; 4]; KEPT],
            raw_headers: false,
        }
    }
}

fn lean(message: &Bytes) -> Result<Incoming, Unusual> {
    let buf: &[u8] = message;
    // CheckRequest.attributes (1) -> AttributeContext.request (4) -> Request.http (2).
    let Some(attributes) = only(buf, 0..buf.len(), 1)? else {
        return Ok(Incoming::Missing);
    };
    let Some(request) = only(buf, attributes, 4)? else {
        return Ok(Incoming::Missing);
    };
    let Some(http_range) = only(buf, request, 2)? else {
        return Ok(Incoming::Missing);
    };

    let mut http = Http::default();
    let mut fields = Fields::new(buf, http_range.clone());
    while let Some(field) = fields.next()? {
        match field.number {
            1 => http.id = string(buf, &field)?,
            2 => http.method = string(buf, &field)?,
            3 => {
                let (key, value) = map_entry(buf, field.len()?, true)?;
                if let Some(kept) = http.kept.get_mut(http.headers) {
                    // Within the 4 MB tonic accepts.
                    let at = |i: usize| u32::try_from(i).map_err(|_| Unusual);
                    *kept = [
                        at(key.start)?,
                        at(key.end)?,
                        at(value.start)?,
                        at(value.end)?,
                    ];
                }
                http.headers += 1;
            }
            4 => http.path = string(buf, &field)?,
            5 => http.host = string(buf, &field)?,
            6 => http.scheme = string(buf, &field)?,
            7 => http.query = string(buf, &field)?,
            8 | 10 | 11 => {
                string(buf, &field)?;
            }
            9 if field.wire != VARINT => return Err(Unusual),
            12 => {
                field.len()?;
            }
            13 => {
                // HeaderMap { repeated HeaderValue headers = 1; }, merged when repeated.
                let mut values = Fields::new(buf, field.len()?);
                while let Some(value) = values.next()? {
                    if value.number == 1 {
                        raw_header(buf, value.len()?, true)?;
                        http.raw_headers = true;
                    }
                }
            }
            _ => {}
        }
    }
    Ok(Incoming::Parts(parts(message, http_range, &http)?))
}

/// A `headers` map entry: key (1) and value (2), both strings, the last of each; `check`:
/// whether to check that they are UTF-8 (done once, on the first reading).
fn map_entry(
    buf: &[u8],
    range: Range<usize>,
    check: bool,
) -> Result<(Range<usize>, Range<usize>), Unusual> {
    let (mut key, mut value) = (0..0, 0..0);
    let mut fields = Fields::new(buf, range);
    while let Some(field) = fields.next()? {
        let slot = match field.number {
            1 => &mut key,
            2 => &mut value,
            _ => continue,
        };
        *slot = if check {
            string(buf, &field)?
        } else {
            field.len()?
        };
    }
    Ok((key, value))
}

/// A raw `HeaderValue`: key (1), value (2) and raw_value (3); the value is `raw_value` unless
/// it is empty. `check` as for [`map_entry`].
fn raw_header(
    buf: &[u8],
    range: Range<usize>,
    check: bool,
) -> Result<(Range<usize>, Range<usize>), Unusual> {
    let (mut key, mut value, mut raw) = (0..0, 0..0, 0..0);
    let mut fields = Fields::new(buf, range);
    while let Some(field) = fields.next()? {
        let slot = match field.number {
            1 => &mut key,
            2 => &mut value,
            3 => {
                raw = field.len()?;
                continue;
            }
            _ => continue,
        };
        *slot = if check {
            string(buf, &field)?
        } else {
            field.len()?
        };
    }
    Ok((key, if raw.is_empty() { value } else { raw }))
}

/// [`super::request_parts`] from the message's bytes.
fn parts(
    message: &Bytes,
    http_range: Range<usize>,
    http: &Http,
) -> Result<Result<Parts, (RequestError, String)>, Unusual> {
    let buf: &[u8] = message;
    let text = |r: &Range<usize>| -> &str {
        // Checked by `string`.
        std::str::from_utf8(&buf[r.clone()]).unwrap_or_default()
    };
    let fail = |e: RequestError| Ok(Err((e, text(&http.id).to_owned())));

    let method = if http.method.is_empty() {
        Method::GET
    } else {
        match Method::from_bytes(&buf[http.method.clone()]) {
            Ok(m) => m,
            Err(_) => return fail(RequestError::Method(text(&http.method).to_owned())),
        }
    };
    let (path, query) = (text(&http.path), text(&http.query));
    // Envoy puts the query in `path` and leaves `query` empty; other clients may not.
    let uri = if !query.is_empty() && !path.contains('?') {
        let mut target = if path.is_empty() {
            String::from("/")
        } else {
            path.to_owned()
        };
        target.push('?');
        target.push_str(query);
        if !target.starts_with('/') && target != "*" {
            return fail(RequestError::path(&target));
        }
        match target.parse::<Uri>() {
            Ok(uri) => uri,
            Err(_) => return fail(RequestError::path(&target)),
        }
    } else if path.is_empty() {
        Uri::from_static("/")
    } else {
        if !path.starts_with('/') && path != "*" {
            return fail(RequestError::path(path));
        }
        match Uri::from_maybe_shared(message.slice(http.path.clone())) {
            Ok(uri) => uri,
            Err(_) => return fail(RequestError::path(path)),
        }
    };

    // `http.headers` counts the map's entries as sent, repeated keys included.
    if !http.raw_headers && http.headers > MAX_REQUEST_HEADERS {
        return fail(RequestError::TooManyHeaders(http.headers));
    }
    let mut headers = HeaderMap::with_capacity(http.headers.min(MAX_REQUEST_HEADERS) + 2);
    let mut raw_count = 0usize;
    if !http.raw_headers && http.headers <= KEPT {
        for &[ks, ke, vs, ve] in &http.kept[..http.headers] {
            let r = |a: u32, b: u32| a as usize..b as usize;
            map_header(&mut headers, message, r(ks, ke), r(vs, ve))?;
        }
    }
    let walk = http.raw_headers || http.headers > KEPT;
    let mut fields = Fields::new(buf, if walk { http_range } else { 0..0 });
    while let Some(field) = fields.next()? {
        match field.number {
            3 if !http.raw_headers => {
                let (key, value) = map_entry(buf, field.bytes, false)?;
                map_header(&mut headers, message, key, value)?;
            }
            13 if http.raw_headers => {
                let mut values = Fields::new(buf, field.bytes);
                while let Some(v) = values.next()? {
                    if v.number == 1 {
                        raw_count += 1;
                        if raw_count > MAX_REQUEST_HEADERS {
                            return fail(RequestError::TooManyHeaders(raw_count));
                        }
                        let (key, value) = raw_header(buf, v.bytes, false)?;
                        append_header(&mut headers, message, key, value);
                    }
                }
            }
            _ => {}
        }
    }
    if !http.host.is_empty() {
        match HeaderValue::from_maybe_shared(message.slice(http.host.clone())) {
            Ok(host) => {
                headers.insert(header::HOST, host);
            }
            Err(_) => return fail(RequestError::Host(text(&http.host).to_owned())),
        }
    }
    if !headers.contains_key(X_FORWARDED_PROTO) {
        let scheme = text(&http.scheme);
        for known in ["http", "https"] {
            if scheme.eq_ignore_ascii_case(known) {
                headers.insert(X_FORWARDED_PROTO, HeaderValue::from_static(known));
            }
        }
    }

    let mut request = Request::new(());
    *request.method_mut() = method;
    *request.uri_mut() = uri;
    *request.headers_mut() = headers;
    Ok(Ok(request.into_parts().0))
}

/// [`super::append_header`] with the value sharing the message's buffer.
fn append_header(headers: &mut HeaderMap, message: &Bytes, key: Range<usize>, value: Range<usize>) {
    let name = &message[key];
    if name.starts_with(b":") {
        // :authority, :path, :method, :scheme: already in the attributes.
        return;
    }
    let (Ok(name), Ok(value)) = (
        HeaderName::from_bytes(name),
        HeaderValue::from_maybe_shared(message.slice(value)),
    ) else {
        dropped(name);
        return;
    };
    headers.append(name, value);
}

/// [`append_header`] for an entry of the `headers` map, which holds each key once (the last
/// entry of a repeated key wins): a name already present goes to the generated messages, which
/// know which entry that is.
fn map_header(
    headers: &mut HeaderMap,
    message: &Bytes,
    key: Range<usize>,
    value: Range<usize>,
) -> Result<(), Unusual> {
    let name = &message[key];
    if name.starts_with(b":") {
        return Ok(());
    }
    let Ok(header) = HeaderName::from_bytes(name) else {
        dropped(name);
        return Ok(());
    };
    let http::header::Entry::Vacant(entry) = headers.entry(header) else {
        return Err(Unusual);
    };
    match HeaderValue::from_maybe_shared(message.slice(value)) {
        Ok(value) => {
            entry.insert(value);
        }
        Err(_) => dropped(name),
    }
    Ok(())
}

fn dropped(name: &[u8]) {
    tracing::debug!(
        header = %String::from_utf8_lossy(name),
        "dropping an invalid request header"
    );
}

// ---------------------------------------------------------------------------------------------
// The answer.

/// Bytes of a varint.
fn varint_len(value: u64) -> usize {
    // As prost's `encoded_len_varint`.
    (((value | 1).leading_zeros() ^ 63) * 9 + 73) as usize / 64
}

fn put_varint(dst: &mut impl BufMut, mut value: u64) {
    while value >= 0x80 {
        dst.put_u8((value as u8) | 0x80);
        value >>= 7;
    }
    dst.put_u8(value as u8);
}

/// Bytes of a `LEN` field of `len` bytes with a one-byte key (field numbers below 16).
fn len_field(len: usize) -> usize {
    1 + varint_len(len as u64) + len
}

fn put_len_field(dst: &mut impl BufMut, number: u8, bytes: &[u8]) {
    put_header(dst, number, bytes.len());
    dst.put_slice(bytes);
}

fn put_header(dst: &mut impl BufMut, number: u8, len: usize) {
    dst.put_u8(number << 3 | LEN);
    put_varint(dst, len as u64);
}

/// `HeaderAppendAction` values.
const APPEND_IF_EXISTS_OR_ADD: u8 = 0;
const OVERWRITE_IF_EXISTS_OR_ADD: u8 = 2;

/// A `HeaderValueOption` as [`super::header_option`] builds it: `value` when it is UTF-8, else
/// `raw_value`; the deprecated `append` never set.
struct HeaderOption<'a> {
    key: &'a [u8],
    value: &'a [u8],
    raw: bool,
    action: u8,
}

impl<'a> HeaderOption<'a> {
    fn new(name: &'a HeaderName, value: &'a HeaderValue, action: u8) -> Self {
        let bytes = value.as_bytes();
        HeaderOption {
            key: name.as_str().as_bytes(),
            value: bytes,
            raw: std::str::from_utf8(bytes).is_err(),
            action,
        }
    }

    /// Bytes of `HeaderValue { key = 1; value = 2 | raw_value = 3 }`.
    fn header_len(&self) -> usize {
        let value = if self.value.is_empty() {
            0
        } else {
            len_field(self.value.len())
        };
        len_field(self.key.len()) + value
    }

    /// Bytes of the `HeaderValueOption { header = 1; append_action = 3 }`.
    fn len(&self) -> usize {
        len_field(self.header_len()) + if self.action == 0 { 0 } else { 2 }
    }

    fn put(&self, dst: &mut impl BufMut, number: u8) {
        put_header(dst, number, self.len());
        put_header(dst, 1, self.header_len());
        put_len_field(dst, 1, self.key);
        if !self.value.is_empty() {
            put_len_field(dst, if self.raw { 3 } else { 2 }, self.value);
        }
        if self.action != 0 {
            dst.put_u8(3 << 3 | VARINT);
            dst.put_u8(self.action);
        }
    }
}

/// The header options of an allow's upstream headers: the first value of a name replaces the
/// client's, more values are added.
fn upstream(allow: &Allow) -> impl Iterator<Item = HeaderOption<'_>> {
    let mut last: Option<&HeaderName> = None;
    allow.upstream_headers.iter().map(move |(name, value)| {
        let action = if last == Some(name) {
            APPEND_IF_EXISTS_OR_ADD
        } else {
            OVERWRITE_IF_EXISTS_OR_ADD
        };
        last = Some(name);
        HeaderOption::new(name, value, action)
    })
}

/// `CheckResponse { status = { code: OK }; ok_response = 3 }` for `allow`, as
/// [`super::check_response`] builds it and prost encodes it.
fn encode_allow(allow: &Allow, dst: &mut impl BufMut) {
    encode_ok(allow, &encoded_names(allow.headers_to_remove.names()), dst);
}

/// [`encode_allow`] with `remove`, the encoded `headers_to_remove`.
fn encode_ok(allow: &Allow, remove: &[u8], dst: &mut impl BufMut) {
    let added = || {
        allow
            .response_headers
            .iter()
            .map(|(n, v)| HeaderOption::new(n, v, APPEND_IF_EXISTS_OR_ADD))
    };
    let ok_len = upstream(allow).map(|h| len_field(h.len())).sum::<usize>()
        + remove.len()
        + added().map(|h| len_field(h.len())).sum::<usize>();
    // status (1): google.rpc.Status with code OK (0): an empty message.
    dst.put_slice(&[1 << 3 | LEN, 0]);
    put_header(dst, 3, ok_len);
    // OkHttpResponse: headers (2), headers_to_remove (5), response_headers_to_add (6).
    for h in upstream(allow) {
        h.put(dst, 2);
    }
    dst.put_slice(remove);
    for h in added() {
        h.put(dst, 6);
    }
}

/// `headers_to_remove` (field 5 of `OkHttpResponse`) for a static list of names: encoded once
/// per list (the engine's lists are a handful of statics).
fn encoded_names(names: &'static [&'static str]) -> Cow<'static, [u8]> {
    type Slot = OnceLock<(usize, usize, Box<[u8]>)>;
    static SLOTS: [Slot; 8] = [const { OnceLock::new() }; 8];
    let encode = || {
        let mut out = Vec::new();
        for name in names {
            put_len_field(&mut out, 5, name.as_bytes());
        }
        out
    };
    if names.is_empty() {
        return Cow::Borrowed(&[]);
    }
    let key = (names.as_ptr() as usize, names.len());
    for slot in &SLOTS {
        let (ptr, len, bytes) = slot.get_or_init(|| (key.0, key.1, encode().into()));
        if (*ptr, *len) == key {
            return Cow::Borrowed(bytes);
        }
    }
    Cow::Owned(encode())
}

/// The whole answer for a skipped route: `OK`, every identity header in `headers_to_remove`.
fn skip_response() -> &'static [u8] {
    static SKIP: OnceLock<Box<[u8]>> = OnceLock::new();
    SKIP.get_or_init(|| {
        let names = encoded_names(oidc_core::http::headers::all_identity());
        let mut out = vec![1 << 3 | LEN, 0];
        put_header(&mut out, 3, names.len());
        out.extend_from_slice(&names);
        out.into()
    })
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use envoy_types::pb::envoy::config::core::v3::{
        HeaderMap as PbHeaderMap, HeaderValue as PbValue,
    };
    use envoy_types::pb::envoy::service::auth::v3::AttributeContext;
    use envoy_types::pb::envoy::service::auth::v3::attribute_context::{
        HttpRequest, Request as PbRequest,
    };
    use envoy_types::pb::google::rpc;
    use oidc_core::Decision;
    use oidc_core::http::headers::{HeadersToRemove, all_identity};

    use super::*;
    use crate::grpc::{HttpResponse, OkHttpResponse, check_response, code, request_parts};

    fn check(http: HttpRequest) -> CheckRequest {
        CheckRequest {
            attributes: Some(AttributeContext {
                request: Some(PbRequest {
                    http: Some(http),
                    ..PbRequest::default()
                }),
                ..AttributeContext::default()
            }),
        }
    }

    fn http(headers: &[(&str, &str)]) -> HttpRequest {
        HttpRequest {
            id: "42".into(),
            method: "GET".into(),
            path: "/some/page?x=1&y=%2F".into(),
            host: "nginx.example.com".into(),
            scheme: "https".into(),
            protocol: "HTTP/1.1".into(),
            size: -1,
            headers: headers
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect::<HashMap<_, _>>(),
            ..HttpRequest::default()
        }
    }

    /// `bytes` as a length-delimited field `number`.
    fn field(number: u32, bytes: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        prost::encoding::encode_key(number, prost::encoding::WireType::LengthDelimited, &mut out);
        prost::encoding::encode_varint(bytes.len() as u64, &mut out);
        out.extend_from_slice(bytes);
        out
    }

    #[test]
    fn a_key_above_u32_goes_to_the_generated_messages() {
        // prost refuses it (InvalidKey); the lean reader must not judge such a message.
        let mut message = Vec::new();
        prost::encoding::encode_varint((1u64 << 32) | 2, &mut message);
        message.push(0);
        assert!(lean(&Bytes::from(message)).is_err());
    }

    #[test]
    fn too_many_headers_are_a_400_never_a_panic() {
        // 24 575 empty entries of the `headers` map (49 KB): a HeaderMap made for that many
        // panics, and the release build aborts on a panic.
        let mut http_bytes = http(&[]).encode_to_vec();
        for _ in 0..24_575 {
            http_bytes.extend_from_slice(&field(3, &[]));
        }
        // CheckRequest.attributes (1) > AttributeContext.request (4) > Request.http (2).
        let message = field(1, &field(4, &field(2, &http_bytes)));
        match lean(&Bytes::from(message)) {
            Ok(Incoming::Parts(Err((RequestError::TooManyHeaders(24_575), id)))) => {
                assert_eq!(id, "42");
            }
            other => panic!("{other:?}"),
        }
        // One more distinct header than a check may carry: refused by both paths alike.
        let names: Vec<String> = (0..=MAX_REQUEST_HEADERS)
            .map(|i| format!("x-h{i}"))
            .collect();
        let many: Vec<(&str, &str)> = names.iter().map(|n| (n.as_str(), "1")).collect();
        let request = check(http(&many));
        same(&request);
        let bytes = Bytes::from(request.encode_to_vec());
        assert!(matches!(
            lean(&bytes),
            Ok(Incoming::Parts(Err((RequestError::TooManyHeaders(n), _)))) if n == MAX_REQUEST_HEADERS + 1
        ));
        // Raw headers (`header_map`) too.
        let raw = HttpRequest {
            header_map: Some(PbHeaderMap {
                headers: names
                    .iter()
                    .map(|n| PbValue {
                        key: n.clone(),
                        value: "1".into(),
                        ..PbValue::default()
                    })
                    .collect(),
            }),
            ..http(&[])
        };
        same(&check(raw));
        // As many as a check may carry: judged.
        let at_limit: Vec<(&str, &str)> = many[..MAX_REQUEST_HEADERS].to_vec();
        let request = check(http(&at_limit));
        same(&request);
        assert!(matches!(
            lean(&Bytes::from(request.encode_to_vec())),
            Ok(Incoming::Parts(Ok(_)))
        ));
    }

    fn sorted(h: &HeaderMap) -> Vec<(String, Vec<u8>)> {
        let mut v: Vec<(String, Vec<u8>)> = h
            .iter()
            .map(|(n, v)| (n.to_string(), v.as_bytes().to_vec()))
            .collect();
        v.sort();
        v
    }

    /// Both paths give the same request (headers compared as sorted lists: the generated
    /// map's order is a hash order).
    fn same(request: &CheckRequest) {
        let bytes = Bytes::from(request.encode_to_vec());
        let http = request
            .attributes
            .as_ref()
            .and_then(|a| a.request.as_ref())
            .and_then(|r| r.http.as_ref());
        let Ok(got) = lean(&bytes) else {
            panic!("not read as an ordinary message: {request:?}");
        };
        match (http.map(|h| (h, request_parts(h))), got) {
            (None, Incoming::Missing) => {}
            (Some((_, Ok(e))), Incoming::Parts(Ok(g))) => {
                assert_eq!(e.method, g.method);
                assert_eq!(e.uri, g.uri);
                assert_eq!(sorted(&e.headers), sorted(&g.headers));
            }
            (Some((h, Err(e))), Incoming::Parts(Err((g, id)))) => {
                assert_eq!(e.to_string(), g.to_string());
                assert_eq!(id, h.id);
            }
            (e, g) => panic!("generated {e:?}, lean {g:?}"),
        }
    }

    #[test]
    fn requests_read_as_the_generated_messages_read_them() {
        same(&check(http(&[
            (":authority", "nginx.example.com"),
            (":path", "/some/page?x=1&y=%2F"),
            (":method", "GET"),
            ("cookie", "auth=abc; other=1"),
            ("accept", "text/html"),
            ("x-request-id", "abc"),
            ("bad name", "x"),
            ("x-bad-value", "a\u{7f}b"),
            ("x-empty", ""),
            ("x-utf8", "\u{e9}"),
            ("Upper-Case", "1"),
            ("host", "ignored.example.com"),
        ])));
        same(&check(http(&[("x-forwarded-proto", "http")])));
        let mut no_scheme = http(&[]);
        no_scheme.scheme.clear();
        same(&check(no_scheme));
        let mut upper = http(&[]);
        upper.scheme = "HTTPS".into();
        same(&check(upper));
        let mut other = http(&[]);
        other.scheme = "ws".into();
        same(&check(other));
        let mut query = http(&[]);
        query.path = "/p".into();
        query.query = "a=b".into();
        same(&check(query));
        let mut both = http(&[]);
        both.query = "a=b".into();
        same(&check(both));
        same(&check(HttpRequest {
            query: "q".into(),
            ..HttpRequest::default()
        }));
        same(&check(HttpRequest::default()));
        let mut star = http(&[]);
        star.path = "*".into();
        same(&check(star));
        let mut raw = http(&[("ignored", "because raw headers are present")]);
        raw.header_map = Some(PbHeaderMap {
            headers: vec![
                PbValue {
                    key: "x-a".into(),
                    raw_value: b"1".to_vec(),
                    ..PbValue::default()
                },
                PbValue {
                    key: "x-a".into(),
                    value: "2".into(),
                    ..PbValue::default()
                },
                PbValue {
                    key: "x-b".into(),
                    value: "ignored".into(),
                    raw_value: b"\xff".to_vec(),
                },
                PbValue {
                    key: ":authority".into(),
                    value: "h".into(),
                    ..PbValue::default()
                },
            ],
        });
        same(&check(raw));
        // More map entries than the first reading keeps.
        let many: Vec<(String, String)> = (0..KEPT + 5)
            .map(|i| (format!("x-h{i}"), format!("v{i}")))
            .collect();
        let many: Vec<(&str, &str)> = many.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        same(&check(http(&many)));
        same(&check(http(&many[..KEPT])));
        let mut empty_raw = http(&[("x-kept", "1")]);
        empty_raw.header_map = Some(PbHeaderMap::default());
        same(&check(empty_raw));
        for (method, path, host) in [
            ("GE T", "/", "h"),
            ("GET", "no-slash", "h"),
            ("GET", "/a b", "h"),
            ("GET", "/", "h\nx"),
            ("", "no-slash", ""),
        ] {
            let mut bad = http(&[]);
            bad.method = method.into();
            bad.path = path.into();
            bad.host = host.into();
            same(&check(bad));
        }
        let mut bad_query = http(&[]);
        bad_query.path = "x".into();
        bad_query.query = "a".into();
        same(&check(bad_query));
        let mut bad_query = http(&[]);
        bad_query.path = "/x".into();
        bad_query.query = "a b".into();
        same(&check(bad_query));
        same(&CheckRequest::default());
        same(&CheckRequest {
            attributes: Some(AttributeContext::default()),
        });
    }

    /// `http` (an encoded HttpRequest) inside a CheckRequest.
    fn wrap(http: &[u8]) -> Bytes {
        let mut r = Vec::new();
        put_len_field(&mut r, 2, http);
        let mut a = Vec::new();
        put_len_field(&mut a, 4, &r);
        let mut c = Vec::new();
        put_len_field(&mut c, 1, &a);
        Bytes::from(c)
    }

    fn entry(k: &str, v: &str) -> Vec<u8> {
        let mut e = Vec::new();
        put_len_field(&mut e, 1, k.as_bytes());
        put_len_field(&mut e, 2, v.as_bytes());
        let mut f = Vec::new();
        put_len_field(&mut f, 3, &e);
        f
    }

    #[test]
    fn unusual_messages_go_to_the_generated_messages() {
        // The same header twice in the map: the last one wins; two spellings are two headers.
        let mut twice = entry("x-a", "1");
        twice.extend(entry("x-a", "2"));
        twice.extend(entry("X-A", "3"));
        let message = wrap(&twice);
        assert!(lean(&message).is_err());
        let Ok(Incoming::Full(full)) = decode(message) else {
            panic!("not decoded by the generated messages");
        };
        let decoded = full.attributes.unwrap().request.unwrap().http.unwrap();
        let parts = request_parts(&decoded).unwrap();
        let mut values: Vec<_> = parts.headers.get_all("x-a").iter().collect();
        values.sort();
        assert_eq!(values, ["2", "3"]);

        // Not UTF-8 in a string: refused as prost refuses it.
        let mut bad = Vec::new();
        put_len_field(&mut bad, 4, b"/\xff");
        assert_eq!(
            decode(wrap(&bad)).unwrap_err().code(),
            tonic::Code::Internal
        );
        let mut bad = entry("x-a", "1");
        bad.extend(entry("x-b", "\u{e9}"));
        let last = bad.len() - 1;
        bad[last] = 0xff;
        assert_eq!(
            decode(wrap(&bad)).unwrap_err().code(),
            tonic::Code::Internal
        );

        // Truncated, or a wire type prost does not expect.
        let ordinary = check(http(&[("cookie", "a=1")])).encode_to_vec();
        let cut = Bytes::copy_from_slice(&ordinary[..ordinary.len() - 1]);
        assert_eq!(decode(cut).unwrap_err().code(), tonic::Code::Internal);
        let mut wrong = Vec::new();
        wrong.extend_from_slice(&[4 << 3 | VARINT, 1]);
        assert_eq!(
            decode(wrap(&wrong)).unwrap_err().code(),
            tonic::Code::Internal
        );

        // `attributes` twice: merged.
        let mut doubled = ordinary.clone();
        doubled.extend_from_slice(&ordinary);
        assert!(matches!(
            decode(Bytes::from(doubled)),
            Ok(Incoming::Full(_))
        ));

        // Fields the check does not read are skipped, whatever their wire type.
        let mut extra = ordinary.clone();
        extra.extend_from_slice(&[15 << 3 | VARINT, 0x80, 1, 14 << 3 | FIXED32, 1, 2, 3, 4]);
        extra.extend_from_slice(&[13 << 3 | FIXED64, 1, 2, 3, 4, 5, 6, 7, 8]);
        assert!(matches!(
            decode(Bytes::from(extra)),
            Ok(Incoming::Parts(Ok(_)))
        ));
    }

    fn allow(upstream: &[(&'static str, &[u8])], response: &[(&'static str, &str)]) -> Allow {
        let mut upstream_headers = HeaderMap::new();
        for (n, v) in upstream {
            upstream_headers.append(*n, HeaderValue::from_bytes(v).unwrap());
        }
        let mut response_headers = HeaderMap::new();
        for (n, v) in response {
            response_headers.append(*n, HeaderValue::from_str(v).unwrap());
        }
        Allow {
            session: None,
            upstream_headers,
            headers_to_remove: HeadersToRemove::NONE,
            response_headers,
            bearer: None,
        }
    }

    #[test]
    fn answers_are_the_generated_messages_bytes() {
        type Headers<'a, V> = &'a [(&'static str, V)];
        let cases: [(Headers<&[u8]>, Headers<&str>); 3] = [
            (&[], &[]),
            (
                &[
                    ("x-auth-request-user", b"alice"),
                    ("x-auth-request-groups", b"a"),
                    ("x-auth-request-groups", b"b"),
                    ("authorization", b"Bearer x.y.z"),
                    ("x-empty", b""),
                    ("x-latin1", b"caf\xe9"),
                ],
                &[("set-cookie", "a=1; Path=/"), ("set-cookie", "b=2; Path=/")],
            ),
            (&[("x-long", &[b'a'; 300])], &[("set-cookie", "c=3")]),
        ];
        for (upstream, response) in cases {
            for names in [&[][..], all_identity(), &all_identity()[..3]] {
                let mut expected =
                    check_response(Decision::Allow(Box::new(allow(upstream, response))));
                if let Some(HttpResponse::OkResponse(ok)) = &mut expected.http_response {
                    ok.headers_to_remove = names.iter().map(|n| (*n).to_owned()).collect();
                }
                let mut got = Vec::new();
                encode_ok(&allow(upstream, response), &encoded_names(names), &mut got);
                assert_eq!(
                    got,
                    expected.encode_to_vec(),
                    "{upstream:?} {response:?} {names:?}"
                );
            }
        }
        // The cache gives each list its own bytes.
        assert_ne!(
            encoded_names(all_identity()),
            encoded_names(&all_identity()[..3])
        );
        assert_eq!(encoded_names(all_identity()), encoded_names(all_identity()));
    }

    #[test]
    fn a_skipped_route_removes_every_identity_header() {
        let expected = CheckResponse {
            status: Some(rpc::Status {
                code: code::OK,
                ..rpc::Status::default()
            }),
            http_response: Some(HttpResponse::OkResponse(OkHttpResponse {
                headers_to_remove: all_identity().iter().map(|h| (*h).to_owned()).collect(),
                ..OkHttpResponse::default()
            })),
            ..CheckResponse::default()
        };
        assert_eq!(skip_response(), expected.encode_to_vec());
    }
}
