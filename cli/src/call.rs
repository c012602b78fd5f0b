//! Calling a method the tool was not compiled with: JSON in, dynamic
//! protobuf messages on the wire, JSON out.

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use bytes::{Bytes, BytesMut};
use grpc_h3::client::Grpc;
use grpc_h3::codec::Codec;
use grpc_h3::{CancellationToken, Channel, Metadata, Request, Status, Streaming, Transport};
use grpc_h3_types::StatusExt;
use http::uri::PathAndQuery;
use prost::Message;
use prost_reflect::{
    DescriptorPool, DynamicMessage, MessageDescriptor, MethodDescriptor, SerializeOptions,
};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

use crate::args::Args;
use crate::Failure;

/// Encodes [`DynamicMessage`]s and decodes them as the method's output.
#[derive(Clone)]
struct DynamicCodec {
    output: MessageDescriptor,
}

impl Codec for DynamicCodec {
    type Encode = DynamicMessage;
    type Decode = DynamicMessage;

    fn encode(&mut self, item: DynamicMessage, dst: &mut BytesMut) -> Result<(), Status> {
        item.encode(dst)
            .map_err(|e| Status::internal(format!("encoding the request: {e}")))
    }

    fn decode(&mut self, src: Bytes) -> Result<DynamicMessage, Status> {
        DynamicMessage::decode(self.output.clone(), src).map_err(|e| {
            Status::internal(format!(
                "the response is not a valid {}: {e}",
                self.output.full_name()
            ))
        })
    }
}

/// A parse failure of the request data, seen after the call, with the
/// request sender, kept so the stream does not end before the
/// cancellation is seen.
type InputError = Arc<Mutex<Option<(String, mpsc::Sender<DynamicMessage>)>>>;

/// Request messages from `-d`: parsed on a thread (stdin may be a slow
/// pipe) and handed over one at a time, so streams start at once. A
/// message that does not parse cancels `abort`, and the request stream is
/// kept open, so that a streaming call is cancelled rather than ended: the
/// server must not take what was sent so far for the whole request.
fn requests(
    data: Option<String>,
    input: MessageDescriptor,
    abort: CancellationToken,
) -> (mpsc::Receiver<DynamicMessage>, InputError) {
    let (sender, receiver) = mpsc::channel(1);
    let error = InputError::default();
    let failed = error.clone();
    std::thread::spawn(move || {
        let parse = |number: usize, value: Result<serde_json::Value, serde_json::Error>| {
            let value = value.map_err(|e| format!("request data is not JSON: {e}"))?;
            DynamicMessage::deserialize(input.clone(), value).map_err(|e| {
                format!(
                    "request message #{number} is not a valid {}: {e}",
                    input.full_name()
                )
            })
        };
        let send =
            |values: &mut dyn Iterator<Item = Result<serde_json::Value, serde_json::Error>>| {
                for (i, value) in values.enumerate() {
                    if sender.blocking_send(parse(i + 1, value)?).is_err() {
                        break;
                    }
                }
                Ok(())
            };
        let sent: Result<(), String> = match data.as_deref() {
            None => Ok(()),
            Some("@") => {
                let stdin = std::io::stdin();
                send(&mut serde_json::Deserializer::from_reader(stdin.lock()).into_iter())
            }
            Some(text) => send(&mut serde_json::Deserializer::from_str(text).into_iter()),
        };
        if let Err(message) = sent {
            *failed.lock().unwrap() = Some((message, sender));
            abort.cancel();
        }
    });
    (receiver, error)
}

fn input_failure(error: &InputError) -> Option<Failure> {
    error
        .lock()
        .unwrap()
        .take()
        .map(|(message, _sender)| Failure::usage(message))
}

/// Prints `message` as canonical protobuf JSON.
fn print_json(message: &DynamicMessage, args: &Args) -> Result<(), Failure> {
    let options = SerializeOptions::new().skip_default_fields(!args.emit_defaults);
    let mut out = Vec::new();
    let mut serializer = serde_json::Serializer::with_formatter(
        &mut out,
        serde_json::ser::PrettyFormatter::with_indent(b"  "),
    );
    message
        .serialize_with_options(&mut serializer, &options)
        .map_err(|e| Failure::usage(format!("printing the response: {e}")))?;
    out.push(b'\n');
    let _ = std::io::stdout().write_all(&out);
    Ok(())
}

fn print_metadata(what: &str, metadata: &Metadata) {
    eprintln!("* {what}:");
    for (key, value) in metadata.iter() {
        match value {
            grpc_h3::metadata::MetadataValue::Ascii(text) => eprintln!("*   {key}: {text}"),
            grpc_h3::metadata::MetadataValue::Binary(bytes) => {
                use base64::Engine;
                let text = base64::engine::general_purpose::STANDARD_NO_PAD.encode(bytes);
                eprintln!("*   {key}: {text}")
            }
        }
    }
}

/// What `-v` reports.
struct Verbose {
    on: bool,
    /// Connecting plus the reflection requests, when reflection was used.
    connect_and_schema: Option<std::time::Duration>,
    started: Instant,
    first_byte: Option<std::time::Duration>,
}

impl Verbose {
    fn headers(&mut self, metadata: &Metadata, extensions: &http::Extensions) {
        self.first_byte = Some(self.started.elapsed());
        if self.on {
            if let Some(transport) = extensions.get::<Transport>() {
                eprintln!("* transport: {transport}");
            }
            print_metadata("response headers", metadata);
        }
    }

    fn end(&self, trailers: Option<&Metadata>) {
        if !self.on {
            return;
        }
        if let Some(trailers) = trailers {
            print_metadata("response trailers", trailers);
        }
        let ms = |d: std::time::Duration| d.as_secs_f64() * 1000.0;
        match self.connect_and_schema {
            Some(before) => eprintln!(
                "* timing: connect and schema (reflection) {:.2} ms, then the call:",
                ms(before)
            ),
            None => eprintln!("* timing: connecting is part of the call's first byte:"),
        }
        match self.first_byte {
            Some(first) => eprintln!(
                "* timing: first byte {:.2} ms, total {:.2} ms",
                ms(first),
                ms(self.started.elapsed())
            ),
            None => eprintln!("* timing: total {:.2} ms", ms(self.started.elapsed())),
        }
    }
}

/// Calls `method` with the request data and prints the responses.
pub(crate) async fn call(
    channel: &Channel,
    pool: &DescriptorPool,
    method: &MethodDescriptor,
    metadata: Metadata,
    args: &Args,
    connect_and_schema: Option<std::time::Duration>,
) -> Result<(), Failure> {
    let path = PathAndQuery::try_from(format!(
        "/{}/{}",
        method.parent_service().full_name(),
        method.name()
    ))
    .map_err(|e| Failure::usage(format!("method name {:?}: {e}", method.full_name())))?;
    let mut grpc = Grpc::new(channel.clone());
    if let Some(limit) = args.max_msg_sz {
        grpc.options_mut().max_decoding_message_size = limit;
    }
    let codec = DynamicCodec {
        output: method.output(),
    };
    let timeout = crate::connect::max_time(args)?;
    let abort = CancellationToken::new();
    let single_request = |message| request(message, &metadata, timeout);
    let stream_request = |messages| {
        let mut request = request(ReceiverStream::new(messages), &metadata, timeout);
        request.set_cancellation(abort.clone());
        request
    };
    let (mut messages, input_error) = requests(args.data.clone(), method.input(), abort.clone());
    let mut verbose = Verbose {
        on: args.verbose,
        connect_and_schema,
        started: Instant::now(),
        first_byte: None,
    };
    if args.verbose {
        eprintln!("* calling {} on {}", method.full_name(), channel_uri(args));
    }
    let failed = |status: Status, verbose: &Verbose| {
        // Bad request data cancelled the call: that is what to report.
        if let Some(failure) = input_failure(&input_error) {
            return failure;
        }
        verbose.end(Some(status.metadata()));
        print_status(&status, pool);
        Failure::from_status(&status).printed()
    };

    let single = if method.is_client_streaming() {
        None
    } else {
        // One request: the data's only message, or an empty one. Bad data
        // keeps the sender open and cancels `abort` instead.
        let mut next = async || {
            tokio::select! {
                message = messages.recv() => message,
                () = abort.cancelled() => None,
            }
        };
        let first = next().await;
        let second = next().await;
        if let Some(failure) = input_failure(&input_error) {
            return Err(failure);
        }
        if second.is_some() {
            return Err(Failure::usage(format!(
                "{} takes one request message; the data holds more",
                method.full_name()
            )));
        }
        Some(first.unwrap_or_else(|| DynamicMessage::new(method.input())))
    };
    let stream = match single {
        Some(request) if !method.is_server_streaming() => {
            let response = grpc
                .unary(single_request(request), path, codec)
                .await
                .map_err(|s| failed(s, &verbose))?;
            verbose.headers(response.metadata(), response.extensions());
            print_json(response.get_ref(), args)?;
            verbose.end(Some(response.trailers()));
            return Ok(());
        }
        Some(request) => {
            grpc.server_streaming(single_request(request), path, codec)
                .await
        }
        None if !method.is_server_streaming() => {
            let response = grpc
                .client_streaming(stream_request(messages), path, codec)
                .await;
            if let Some(failure) = input_failure(&input_error) {
                return Err(failure);
            }
            let response = response.map_err(|s| failed(s, &verbose))?;
            verbose.headers(response.metadata(), response.extensions());
            print_json(response.get_ref(), args)?;
            verbose.end(Some(response.trailers()));
            return Ok(());
        }
        None => grpc.streaming(stream_request(messages), path, codec).await,
    };
    let response = stream.map_err(|s| failed(s, &verbose))?;
    verbose.headers(response.metadata(), response.extensions());
    let mut responses: Streaming<DynamicMessage> = response.into_inner();
    loop {
        match responses.message().await {
            Ok(Some(message)) => print_json(&message, args)?,
            Ok(None) => break,
            Err(status) => return Err(failed(status, &verbose)),
        }
    }
    if let Some(failure) = input_failure(&input_error) {
        return Err(failure);
    }
    verbose.end(responses.trailers());
    Ok(())
}

fn request<T>(message: T, metadata: &Metadata, timeout: Option<std::time::Duration>) -> Request<T> {
    let mut request = Request::new(message);
    *request.metadata_mut() = metadata.clone();
    if let Some(timeout) = timeout {
        request.set_timeout(timeout);
    }
    request
}

fn channel_uri(args: &Args) -> String {
    args.words
        .first()
        .map(|a| crate::connect::uri(a, args.plaintext))
        .unwrap_or_default()
}

/// The status, and its google.rpc details decoded with the schema, on
/// stderr.
pub(crate) fn print_status(status: &Status, pool: &DescriptorPool) {
    eprintln!("ERROR:");
    eprintln!("  Code: {:?}", status.code());
    eprintln!("  Message: {}", status.message());
    let details = match status.rpc_status() {
        Ok(Some(rpc)) => rpc.details,
        Ok(None) => return,
        Err(e) => {
            eprintln!("  Details: not a google.rpc.Status ({e})");
            return;
        }
    };
    if details.is_empty() {
        return;
    }
    eprintln!("  Details:");
    for (i, any) in details.iter().enumerate() {
        let name = any.type_url.rsplit('/').next().unwrap_or_default();
        let decoded = pool
            .get_message_by_name(name)
            .and_then(|desc| DynamicMessage::decode(desc, any.value.as_slice()).ok())
            .and_then(|message| serde_json::to_string(&message).ok());
        match decoded {
            Some(json) => eprintln!("  {}) {}: {json}", i + 1, any.type_url),
            None => eprintln!(
                "  {}) {}: {} bytes (type not in the schema)",
                i + 1,
                any.type_url,
                any.value.len()
            ),
        }
    }
}
