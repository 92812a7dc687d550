//! A training job's log in CloudWatch Logs: SageMaker writes each instance's output to the
//! stream `JOB/algo-N-TIMESTAMP` of the group `/aws/sagemaker/TrainingJobs`. [`Logs::fetch`]
//! returns the lines written since the last call, stream by stream.

use std::collections::BTreeMap;

use aws_config::BehaviorVersion;

use crate::AwsError;
use crate::call::{explain, or_absent};

/// The log group SageMaker training jobs write to.
pub const TRAINING_LOG_GROUP: &str = "/aws/sagemaker/TrainingJobs";

/// CloudWatch Logs from the default configuration chain.
#[derive(Debug, Clone)]
pub struct Logs {
    client: aws_sdk_cloudwatchlogs::Client,
}

/// Where each stream was read up to (its next forward token).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Cursor {
    tokens: BTreeMap<String, String>,
}

impl Logs {
    pub async fn from_env() -> Self {
        let config = aws_config::defaults(BehaviorVersion::latest()).load().await;
        Self {
            client: aws_sdk_cloudwatchlogs::Client::new(&config),
        }
    }

    /// The lines of the job's streams written since `cursor` was last advanced, each with its
    /// stream's instance (`algo-1`). No group or stream yet is no lines, not an error.
    pub async fn fetch(
        &self,
        job: &str,
        cursor: &mut Cursor,
    ) -> Result<Vec<(String, String)>, AwsError> {
        let streams = match self
            .client
            .describe_log_streams()
            .log_group_name(TRAINING_LOG_GROUP)
            .log_stream_name_prefix(format!("{job}/"))
            .send()
            .await
        {
            Ok(out) => out,
            Err(e) => {
                return or_absent(
                    explain("CloudWatch Logs", job, "list the log streams of", &e),
                    Vec::new(),
                );
            }
        };
        let mut names: Vec<String> = streams
            .log_streams()
            .iter()
            .filter_map(|s| s.log_stream_name().map(str::to_owned))
            .collect();
        names.sort();
        let mut lines = Vec::new();
        for stream in names {
            let instance = stream
                .split('/')
                .nth(1)
                .map(|s| s.rsplit_once('-').map_or(s, |(head, _)| head))
                .unwrap_or_default()
                .to_owned();
            loop {
                let mut get = self
                    .client
                    .get_log_events()
                    .log_group_name(TRAINING_LOG_GROUP)
                    .log_stream_name(&stream)
                    .start_from_head(true);
                if let Some(token) = cursor.tokens.get(&stream) {
                    get = get.next_token(token);
                }
                let out = get
                    .send()
                    .await
                    .map_err(|e| explain("CloudWatch Logs", &stream, "read the log stream", &e))?;
                let events = out.events();
                lines.extend(
                    events
                        .iter()
                        .filter_map(|e| e.message())
                        .map(|m| (instance.clone(), m.trim_end().to_owned())),
                );
                let next = out.next_forward_token().map(str::to_owned);
                let same = next.as_ref() == cursor.tokens.get(&stream);
                if let Some(token) = next {
                    cursor.tokens.insert(stream.clone(), token);
                }
                // The forward token stays the same once the end of the stream is reached.
                if events.is_empty() || same {
                    break;
                }
            }
        }
        Ok(lines)
    }
}
