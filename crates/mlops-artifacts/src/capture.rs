//! Capture files (`mlops serve --capture`, README "Monitoring"): one JSON line per answered
//! request, with the body as received and the answer as sent, so that `mlops monitor` reads them
//! back through the service's own parsers. [`Line::parse`] also reads SageMaker's DataCapture
//! lines (`captureData.endpointInput` / `endpointOutput`, encoded as CSV, JSON or BASE64), so a
//! SageMaker endpoint's capture and ours are judged alike.

use base64::Engine as _;
use serde::{Deserialize, Serialize};

/// One request as `mlops serve` captures it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Record {
    /// The inference id: the caller's `X-Inference-Id` (or SageMaker's
    /// `X-Amzn-SageMaker-Inference-Id`) header, else one the service made. Ground truth is
    /// joined to predictions by it.
    pub id: String,
    /// When the answer was written: RFC 3339, UTC, milliseconds.
    pub time: String,
    /// `NAME@VERSION` of the model that answered, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// The SHA-256 of the artifact that answered.
    pub artifact: String,
    /// The route: `invocations` (SageMaker's contract) or `v2` (Open Inference Protocol).
    pub route: Route,
    /// Rows predicted.
    pub rows: u64,
    pub input: Payload,
    pub output: Payload,
}

/// Which route answered: it says how the input is read back.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Route {
    Invocations,
    V2,
}

/// A body: its content type and its bytes, as text when they are UTF-8, else in base64.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Payload {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_type: Option<String>,
    pub encoding: Encoding,
    pub data: String,
}

/// How a payload's bytes are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Encoding {
    Text,
    Base64,
}

impl Payload {
    /// `bytes` as a payload: the text itself when it is UTF-8.
    pub fn of(content_type: Option<&str>, bytes: &[u8]) -> Self {
        let (encoding, data) = match std::str::from_utf8(bytes) {
            Ok(text) => (Encoding::Text, text.to_owned()),
            Err(_) => (
                Encoding::Base64,
                base64::engine::general_purpose::STANDARD.encode(bytes),
            ),
        };
        Self {
            content_type: content_type.map(str::to_owned),
            encoding,
            data,
        }
    }

    /// The bytes as they were sent.
    pub fn into_bytes(self) -> Result<Vec<u8>, String> {
        match self.encoding {
            Encoding::Text => Ok(self.data.into_bytes()),
            Encoding::Base64 => base64::engine::general_purpose::STANDARD
                .decode(&self.data)
                .map_err(|e| format!("the payload is not base64: {e}")),
        }
    }
}

/// One line of a capture file, ours or SageMaker's, in the terms the monitor reads.
#[derive(Debug, Clone, PartialEq)]
pub struct Line {
    pub id: String,
    /// RFC 3339.
    pub time: String,
    /// The artifact that answered (`None`: SageMaker's lines do not say).
    pub artifact: Option<String>,
    pub model: Option<String>,
    pub route: Route,
    pub input: (Option<String>, Vec<u8>),
    pub output: (Option<String>, Vec<u8>),
}

/// SageMaker's DataCapture line.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct SageMakerLine {
    capture_data: CaptureData,
    #[serde(default)]
    event_metadata: EventMetadata,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct CaptureData {
    endpoint_input: Option<SageMakerPayload>,
    endpoint_output: Option<SageMakerPayload>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct SageMakerPayload {
    #[serde(default)]
    observed_content_type: Option<String>,
    data: serde_json::Value,
    #[serde(default)]
    encoding: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct EventMetadata {
    #[serde(default)]
    event_id: Option<String>,
    #[serde(default)]
    inference_id: Option<String>,
    #[serde(default)]
    inference_time: Option<String>,
}

impl SageMakerPayload {
    fn bytes(self) -> Result<(Option<String>, Vec<u8>), String> {
        let text = match self.data {
            serde_json::Value::String(s) => s,
            // Some writers put a JSON body in place rather than as a string.
            other => other.to_string(),
        };
        let bytes = match self
            .encoding
            .as_deref()
            .map(str::to_ascii_uppercase)
            .as_deref()
        {
            Some("BASE64") => base64::engine::general_purpose::STANDARD
                .decode(text.trim())
                .map_err(|e| format!("`data` is not base64: {e}"))?,
            _ => text.into_bytes(),
        };
        Ok((self.observed_content_type, bytes))
    }
}

impl Line {
    /// Reads one line of a capture file: ours ([`Record`]) or SageMaker's DataCapture.
    pub fn parse(text: &str) -> Result<Self, String> {
        Self::parse_bytes(text.as_bytes())
    }

    /// [`Line::parse`] of the line's bytes (UTF-8 is checked once, as the JSON is read). Ours
    /// is tried first: a SageMaker line fails at its first key, since ours denies unknown ones.
    pub fn parse_bytes(text: &[u8]) -> Result<Self, String> {
        let record = match serde_json::from_slice::<Record>(text) {
            Ok(record) => record,
            Err(_) if contains(text, b"\"captureData\"") => return Self::sagemaker(text),
            Err(e) => return Err(format!("not a capture line: {e}")),
        };
        Ok(Line {
            input: (
                record.input.content_type.clone(),
                record.input.into_bytes()?,
            ),
            output: (
                record.output.content_type.clone(),
                record.output.into_bytes()?,
            ),
            id: record.id,
            time: record.time,
            artifact: Some(record.artifact),
            model: record.model,
            route: record.route,
        })
    }

    /// A SageMaker DataCapture line.
    fn sagemaker(text: &[u8]) -> Result<Self, String> {
        let line: SageMakerLine = serde_json::from_slice(text)
            .map_err(|e| format!("not a SageMaker DataCapture line: {e}"))?;
        let (Some(input), Some(output)) = (
            line.capture_data.endpoint_input,
            line.capture_data.endpoint_output,
        ) else {
            return Err(
                "the DataCapture line lacks endpointInput or endpointOutput (capture both, \
                 `CaptureOptions` INPUT and OUTPUT)"
                    .to_owned(),
            );
        };
        let meta = line.event_metadata;
        Ok(Line {
            id: meta.inference_id.or(meta.event_id).unwrap_or_default(),
            time: meta.inference_time.unwrap_or_default(),
            artifact: None,
            model: None,
            route: Route::Invocations,
            input: input.bytes()?,
            output: output.bytes()?,
        })
    }
}

/// Whether `needle` occurs in `haystack`.
fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn our_lines_read_back_with_text_and_binary_bodies() {
        let record = Record {
            id: "req-1".into(),
            time: "2026-12-05T10:00:00.000Z".into(),
            model: Some("churn@3".into()),
            artifact: "ab".repeat(32),
            route: Route::Invocations,
            rows: 1,
            input: Payload::of(Some("text/csv"), b"1,\"a,b\",\n"),
            output: Payload::of(Some("application/json"), &[0xff, 0x00, 0x7b]),
        };
        assert_eq!(record.output.encoding, Encoding::Base64);
        let text = serde_json::to_string(&record).expect("json");
        assert!(!text.contains('\n'), "one line: {text}");
        let line = Line::parse(&text).expect("reads back");
        assert_eq!(
            line.input,
            (Some("text/csv".into()), b"1,\"a,b\",\n".to_vec())
        );
        assert_eq!(line.output.1, vec![0xff, 0x00, 0x7b]);
        assert_eq!(line.artifact.as_deref(), Some(record.artifact.as_str()));
    }

    #[test]
    fn sagemaker_lines_read_in_each_encoding() {
        let csv = r#"{"captureData":{"endpointInput":{"observedContentType":"text/csv","mode":"INPUT","data":"1.5,2","encoding":"CSV"},"endpointOutput":{"observedContentType":"text/csv; charset=utf-8","mode":"OUTPUT","data":"0.7","encoding":"CSV"}},"eventMetadata":{"eventId":"e-1","inferenceTime":"2026-12-05T10:00:00Z"},"eventVersion":"0"}"#;
        let line = Line::parse(csv).expect("csv");
        assert_eq!(line.input.1, b"1.5,2");
        assert_eq!(line.output.1, b"0.7");
        assert_eq!((line.id.as_str(), line.artifact), ("e-1", None));
        let json = r#"{"captureData":{"endpointInput":{"observedContentType":"application/json","mode":"INPUT","data":"{\"instances\": [[1.5, 2]]}","encoding":"JSON"},"endpointOutput":{"observedContentType":"application/json","mode":"OUTPUT","data":"eyJwcmVkaWN0aW9ucyI6IFswLjddfQ==","encoding":"BASE64"}},"eventMetadata":{"eventId":"e-2","inferenceId":"mine-2","inferenceTime":"2026-12-05T10:00:01Z"},"eventVersion":"0"}"#;
        let line = Line::parse(json).expect("json");
        assert_eq!(line.input.1, br#"{"instances": [[1.5, 2]]}"#);
        assert_eq!(line.output.1, br#"{"predictions": [0.7]}"#);
        assert_eq!(
            line.id, "mine-2",
            "the caller's inference id wins over the event id"
        );
        let only_input = r#"{"captureData":{"endpointInput":{"data":"1","encoding":"CSV"}}}"#;
        assert!(
            Line::parse(only_input)
                .expect_err("no output")
                .contains("OUTPUT")
        );
        assert!(Line::parse("{").is_err());
    }
}
