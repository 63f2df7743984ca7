//! The two framings under NRI's messages, as pure byte transforms: ttrpc messages on a multiplexed
//! connection, and the multiplexer's frames on the socket ([`crate::protocol`] has the numbers).
//!
//! [`frames`] turns one ttrpc message into the bytes to write; [`Demux`] takes the socket's bytes in
//! whatever pieces they arrive and gives back whole ttrpc messages, per connection. Neither allocates
//! more than one message's body (at most [`TTRPC_MAX_MESSAGE`]), whatever lengths the peer claims.

use crate::protocol::{
    MUX_HEADER_LEN, MUX_MAX_WRITE, PLUGIN_SERVICE_CONN, RUNTIME_SERVICE_CONN, TTRPC_HEADER_LEN,
    TTRPC_MAX_MESSAGE,
};

/// A ttrpc message header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    pub length: u32,
    pub stream: u32,
    pub kind: u8,
    pub flags: u8,
}

impl Header {
    fn parse(bytes: &[u8; TTRPC_HEADER_LEN]) -> Header {
        Header {
            length: u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]),
            stream: u32::from_be_bytes([bytes[4], bytes[5], bytes[6], bytes[7]]),
            kind: bytes[8],
            flags: bytes[9],
        }
    }

    fn bytes(&self) -> [u8; TTRPC_HEADER_LEN] {
        let mut out = [0; TTRPC_HEADER_LEN];
        out[..4].copy_from_slice(&self.length.to_be_bytes());
        out[4..8].copy_from_slice(&self.stream.to_be_bytes());
        out[8] = self.kind;
        out[9] = self.flags;
        out
    }
}

/// A message too long to send (more than [`TTRPC_MAX_MESSAGE`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("a ttrpc message of {0} bytes is longer than the protocol's 4 MiB")]
pub struct TooLong(pub usize);

/// The bytes that carry one ttrpc message (`kind`, on `stream`) over connection `conn`: its header and
/// body split into multiplexer frames of at most [`MUX_MAX_WRITE`] payload bytes, none shared with
/// another message.
pub fn frames(conn: u32, stream: u32, kind: u8, body: &[u8]) -> Result<Vec<u8>, TooLong> {
    if body.len() > TTRPC_MAX_MESSAGE {
        return Err(TooLong(body.len()));
    }
    let header = Header {
        length: body.len() as u32,
        stream,
        kind,
        flags: 0,
    }
    .bytes();
    let total = TTRPC_HEADER_LEN + body.len();
    let mut out = Vec::with_capacity(total + MUX_HEADER_LEN * total.div_ceil(MUX_MAX_WRITE));
    let mut message = header.iter().chain(body.iter()).copied();
    let mut left = total;
    while left > 0 {
        let size = left.min(MUX_MAX_WRITE);
        out.extend_from_slice(&conn.to_be_bytes());
        out.extend_from_slice(&(size as u32).to_be_bytes());
        out.extend(message.by_ref().take(size));
        left -= size;
    }
    Ok(out)
}

/// What [`Demux`] found in the bytes pushed so far.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A whole ttrpc message on connection `conn`.
    Message {
        conn: u32,
        header: Header,
        body: Vec<u8>,
    },
    /// A message whose header claimed more than [`TTRPC_MAX_MESSAGE`]: its body was skipped as it
    /// arrived (a request among them deserves a `RESOURCE_EXHAUSTED` answer).
    Oversized { conn: u32, header: Header },
    /// Bytes for a connection other than NRI's two, dropped as the Go multiplexer drops them.
    Dropped { conn: u32, bytes: usize },
}

/// One multiplexed connection's ttrpc byte stream, being cut into messages.
#[derive(Debug, Default)]
struct TtrpcStream {
    header: Vec<u8>,
    body: Vec<u8>,
    /// Body bytes still to come, for the message whose header is in `header`.
    wanted: usize,
    /// Whether those bytes are skipped (an oversized message) rather than kept.
    skipping: bool,
}

impl TtrpcStream {
    fn push(&mut self, conn: u32, mut bytes: &[u8], events: &mut Vec<Event>) {
        while !bytes.is_empty() {
            if self.header.len() < TTRPC_HEADER_LEN {
                let take = (TTRPC_HEADER_LEN - self.header.len()).min(bytes.len());
                self.header.extend_from_slice(&bytes[..take]);
                bytes = &bytes[take..];
                if self.header.len() < TTRPC_HEADER_LEN {
                    return;
                }
                let header = self.header_value();
                self.wanted = header.length as usize;
                self.skipping = self.wanted > TTRPC_MAX_MESSAGE;
                if self.skipping {
                    events.push(Event::Oversized { conn, header });
                } else {
                    self.body = Vec::with_capacity(self.wanted.min(64 * 1024));
                }
                if self.wanted == 0 {
                    self.finish(conn, events);
                }
                continue;
            }
            let take = self.wanted.min(bytes.len());
            if !self.skipping {
                self.body.extend_from_slice(&bytes[..take]);
            }
            self.wanted -= take;
            bytes = &bytes[take..];
            if self.wanted == 0 {
                self.finish(conn, events);
            }
        }
    }

    fn header_value(&self) -> Header {
        let mut bytes = [0; TTRPC_HEADER_LEN];
        bytes.copy_from_slice(&self.header);
        Header::parse(&bytes)
    }

    fn finish(&mut self, conn: u32, events: &mut Vec<Event>) {
        let header = self.header_value();
        if !self.skipping {
            events.push(Event::Message {
                conn,
                header,
                body: std::mem::take(&mut self.body),
            });
        }
        self.header.clear();
        self.skipping = false;
    }
}

/// Cuts the socket's bytes into multiplexer frames and each NRI connection's bytes into ttrpc messages.
#[derive(Debug, Default)]
pub struct Demux {
    frame_header: Vec<u8>,
    frame_conn: u32,
    /// Payload bytes of the current frame still to come.
    frame_left: usize,
    plugin: TtrpcStream,
    runtime: TtrpcStream,
}

impl Demux {
    pub fn new() -> Demux {
        Demux::default()
    }

    /// Takes the next bytes read from the socket; whatever they complete is appended to `events`.
    pub fn push(&mut self, mut bytes: &[u8], events: &mut Vec<Event>) {
        while !bytes.is_empty() {
            if self.frame_left == 0 {
                let take = (MUX_HEADER_LEN - self.frame_header.len()).min(bytes.len());
                self.frame_header.extend_from_slice(&bytes[..take]);
                bytes = &bytes[take..];
                if self.frame_header.len() < MUX_HEADER_LEN {
                    return;
                }
                let h = &self.frame_header;
                self.frame_conn = u32::from_be_bytes([h[0], h[1], h[2], h[3]]);
                self.frame_left = u32::from_be_bytes([h[4], h[5], h[6], h[7]]) as usize;
                self.frame_header.clear();
                continue;
            }
            let take = self.frame_left.min(bytes.len());
            let (payload, rest) = bytes.split_at(take);
            match self.frame_conn {
                PLUGIN_SERVICE_CONN => self.plugin.push(self.frame_conn, payload, events),
                RUNTIME_SERVICE_CONN => self.runtime.push(self.frame_conn, payload, events),
                conn => match events.last_mut() {
                    Some(Event::Dropped { conn: last, bytes }) if *last == conn => *bytes += take,
                    _ => events.push(Event::Dropped { conn, bytes: take }),
                },
            }
            self.frame_left -= take;
            bytes = rest;
        }
    }

    /// Whether the bytes pushed so far end exactly between messages (nothing half-read).
    pub fn is_between_messages(&self) -> bool {
        self.frame_header.is_empty()
            && self.frame_left == 0
            && self.plugin.header.is_empty()
            && self.runtime.header.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::{TTRPC_REQUEST, TTRPC_RESPONSE};

    fn demux_all(bytes: &[u8], piece: usize) -> Vec<Event> {
        let mut demux = Demux::new();
        let mut events = Vec::new();
        for chunk in bytes.chunks(piece.max(1)) {
            demux.push(chunk, &mut events);
        }
        assert!(demux.is_between_messages());
        events
    }

    #[test]
    fn a_small_message_is_one_frame() {
        let bytes = frames(1, 3, TTRPC_RESPONSE, b"hello").unwrap();
        assert_eq!(
            bytes,
            b"\0\0\0\x01\0\0\0\x0f\0\0\0\x05\0\0\0\x03\x02\0hello".to_vec()
        );
    }

    #[test]
    fn a_large_message_is_split_into_frames_of_at_most_4096_bytes() {
        let body: Vec<u8> = (0..10_000u32).map(|i| i as u8).collect();
        let bytes = frames(2, 1, TTRPC_REQUEST, &body).unwrap();
        let mut at = 0;
        let mut sizes = Vec::new();
        while at < bytes.len() {
            assert_eq!(&bytes[at..at + 4], &[0, 0, 0, 2]);
            let size = u32::from_be_bytes(bytes[at + 4..at + 8].try_into().unwrap()) as usize;
            sizes.push(size);
            at += 8 + size;
        }
        assert_eq!(sizes, [4096, 4096, 10_010 - 8192]);
        for piece in [1, 7, 4096, 100_000] {
            let events = demux_all(&bytes, piece);
            assert_eq!(events.len(), 1);
            let Event::Message {
                conn,
                header,
                body: got,
            } = &events[0]
            else {
                panic!("{events:?}");
            };
            assert_eq!((*conn, header.stream, header.kind), (2, 1, TTRPC_REQUEST));
            assert_eq!(got, &body);
        }
    }

    #[test]
    fn messages_of_both_connections_interleave_and_empty_bodies_count() {
        let mut bytes = frames(1, 1, TTRPC_REQUEST, b"").unwrap();
        bytes.extend(frames(2, 5, TTRPC_RESPONSE, b"abc").unwrap());
        bytes.extend(frames(1, 3, TTRPC_REQUEST, &[7; 5000]).unwrap());
        let events = demux_all(&bytes, 3);
        let summary: Vec<(u32, u32, usize)> = events
            .iter()
            .map(|e| match e {
                Event::Message { conn, header, body } => (*conn, header.stream, body.len()),
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(summary, [(1, 1, 0), (2, 5, 3), (1, 3, 5000)]);
    }

    #[test]
    fn a_runtime_may_send_one_message_in_one_large_frame_or_many_tiny_ones() {
        let body = vec![9u8; 9000];
        let mut message = Header {
            length: 9000,
            stream: 1,
            kind: TTRPC_REQUEST,
            flags: 0,
        }
        .bytes()
        .to_vec();
        message.extend_from_slice(&body);
        let mut one_frame = 1u32.to_be_bytes().to_vec();
        one_frame.extend_from_slice(&(message.len() as u32).to_be_bytes());
        one_frame.extend_from_slice(&message);
        let mut tiny_frames = Vec::new();
        for chunk in message.chunks(3) {
            tiny_frames.extend_from_slice(&1u32.to_be_bytes());
            tiny_frames.extend_from_slice(&(chunk.len() as u32).to_be_bytes());
            tiny_frames.extend_from_slice(chunk);
        }
        for bytes in [one_frame, tiny_frames] {
            let events = demux_all(&bytes, 1000);
            assert!(
                matches!(&events[..], [Event::Message { body: b, .. }] if *b == body),
                "{:?}",
                events.len()
            );
        }
    }

    #[test]
    fn an_oversized_message_is_skipped_without_being_kept_and_the_next_one_still_arrives() {
        let claimed = TTRPC_MAX_MESSAGE + 1;
        let mut stream = Header {
            length: claimed as u32,
            stream: 7,
            kind: TTRPC_REQUEST,
            flags: 0,
        }
        .bytes()
        .to_vec();
        stream.extend(std::iter::repeat_n(0u8, claimed));
        stream.extend(
            Header {
                length: 2,
                stream: 9,
                kind: TTRPC_REQUEST,
                flags: 0,
            }
            .bytes(),
        );
        stream.extend_from_slice(b"ok");
        let mut bytes = Vec::new();
        for chunk in stream.chunks(1 << 20) {
            bytes.extend_from_slice(&1u32.to_be_bytes());
            bytes.extend_from_slice(&(chunk.len() as u32).to_be_bytes());
            bytes.extend_from_slice(chunk);
        }
        let events = demux_all(&bytes, 64 * 1024);
        assert_eq!(events.len(), 2, "{:?}", events.first());
        assert!(matches!(events[0], Event::Oversized { conn: 1, header } if header.stream == 7));
        assert!(
            matches!(&events[1], Event::Message { header, body, .. } if header.stream == 9 && body == b"ok")
        );
    }

    #[test]
    fn frames_for_other_connections_are_dropped_and_counted() {
        let mut bytes = Vec::new();
        bytes.extend_from_slice(&3u32.to_be_bytes());
        bytes.extend_from_slice(&4u32.to_be_bytes());
        bytes.extend_from_slice(b"junk");
        bytes.extend(frames(1, 1, TTRPC_REQUEST, b"x").unwrap());
        let events = demux_all(&bytes, 5);
        assert_eq!(events[0], Event::Dropped { conn: 3, bytes: 4 });
        assert!(matches!(&events[1], Event::Message { conn: 1, .. }));
    }

    #[test]
    fn a_message_over_4_mib_is_not_sent() {
        assert_eq!(
            frames(1, 1, TTRPC_RESPONSE, &vec![0; TTRPC_MAX_MESSAGE + 1]),
            Err(TooLong(TTRPC_MAX_MESSAGE + 1))
        );
    }
}
